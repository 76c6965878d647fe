"""What the field and review pages get from the server beyond the API: /whoami, the service worker, the
review page (coopgis.api.fieldpages)."""

from __future__ import annotations

import json
import re

import pytest

from coopgis.assets import ASSETS, missing_assets
from coopgis.maps import WEB

needs_vendor = pytest.mark.skipif(bool(missing_assets(WEB)), reason="needs npm ci --prefix coopgis/web")


@pytest.fixture(scope="module")
def roles(dataset, sample_store, tmp_path_factory):
    """An app on the session's dataset with one token per role (``roles.as_role(role)`` gives the header)."""
    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    folder = tmp_path_factory.mktemp("roles")
    tokens = TokenStore(folder / "tokens.json")
    keys = {role: tokens.add(f"{role}-user", role) for role in ("field_officer", "gis_staff", "admin")}
    client = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=folder / "tokens.json"),
                                   dataset))
    client.as_role = lambda role: {"Authorization": f"Bearer {keys[role]}"}
    return client


def test_whoami_names_the_tokens_owner(roles):
    assert roles.get("/whoami").json() == {"name": None, "role": "public", "role_fa": "عمومی"}
    me = roles.get("/whoami", headers=roles.as_role("field_officer"))
    assert me.json() == {"name": "field_officer-user", "role": "field_officer", "role_fa": "کارشناس میدانی"}
    assert me.headers["cache-control"] == "no-store"
    bad = roles.get("/whoami", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")
    assert roles.get("/whoami?token=x").status_code == 400            # never in the query string


@needs_vendor
def test_the_service_worker_keeps_the_field_page_and_every_asset(client, tmp_path):
    r = client.get("/field-sw.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"
    config = json.loads(re.search(r"var CONFIG = (\{.*?\});", r.text).group(1))
    assert config["page"] == "/maps/field" and config["base"] == ""
    assert sorted(config["files"]) == sorted(f"/vendor/{name}" for name in ASSETS)
    assert all(client.get(f).status_code == 200 for f in config["files"])        # nothing it keeps is missing
    assert re.fullmatch(r"[0-9a-f]{16}", config["version"])
    s = client.app.state.settings
    assert config["tiles_kept"] == s.offline_tiles and config["wait_ms"] == s.offline_wait_seconds * 1000
    assert "http://" not in r.text and "https://" not in r.text
    # a new version of any kept file is a new worker version
    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.maps import MapSettings

    web = tmp_path / "web"      # the app's own files copied, the npm libraries linked
    web.mkdir()
    for f in WEB.iterdir():
        if f.is_file():
            (web / f.name).write_bytes(f.read_bytes())
    (web / "node_modules").symlink_to(WEB / "node_modules")
    app = create_app(client.app.state.settings, client.app.state.dataset, MapSettings(web_dir=web))
    other = TestClient(app)
    same = json.loads(re.search(r"var CONFIG = (\{.*?\});", other.get("/field-sw.js").text).group(1))
    assert same["version"] == config["version"]
    (web / "labels.css").write_text((web / "labels.css").read_text() + "\n/* changed */\n")
    changed = json.loads(re.search(r"var CONFIG = (\{.*?\});", other.get("/field-sw.js").text).group(1))
    assert changed["version"] != config["version"]


def test_the_review_page_holds_no_data_and_suits_the_csp(roles):
    r = roles.get("/admin/reports")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<html lang="fa" dir="rtl">' in html
    csp = r.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert all(f'nonce="{nonce}"' in tag for tag in re.findall(r"<script[^>]*>", html))
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert all(ref.startswith(("/", "http://testserver/")) for ref in refs), refs     # everything from the app
    assert "registration_no" not in html and "reporter" not in html       # the script reads with a token
    for name in ("leaflet/leaflet.js", "coopgis/labels.js", "coopgis/messages.js", "coopgis/signin.js",
                 "coopgis/review.js"):
        assert f"/vendor/{name}" in html
