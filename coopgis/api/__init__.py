"""HTTP routers of the coopgis app, one module per resource."""
