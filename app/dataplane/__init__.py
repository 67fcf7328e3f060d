"""Request -> scoring context -> pipeline -> result, without HTTP (MLServer's data plane)."""
