"""Wire formats shared by the app, the push server and the clients: defined once here."""
