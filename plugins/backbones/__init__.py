"""Built-in backbones plugins, registered through this project's entry points."""
