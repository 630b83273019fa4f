"""HTTP routes, one module per area; app/main.py mounts them."""
