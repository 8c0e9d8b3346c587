"""One module per blender rule; each is a pure function over plain inputs (see ../README.md)."""
