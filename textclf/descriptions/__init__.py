"""Class descriptions: the describing engine, description files, and users' description tables."""
