"""The bundled local demo web: several sites on loopback, each showing a reservation case."""
