"""The Personalize dataset model: schemas, typed rows, a validating importer into the lake, development data.

- `schema`: the Avro-like JSON schemas of interactions, users and items (schemas/*.json), the one source of truth;
- `models`: the frozen dataclasses Interaction, User, Item generated from them;
- `importer.import_dataset(source, destination)`: validate CSV files and land them in the data lake, all or nothing;
- `movietweetings.convert_movietweetings(source_dir, out_dir)`: the real development dataset as Personalize CSVs;
- `synthetic.generate(out_dir, ...)`: a synthetic dataset with planted preferences, at any scale.

See README.md in this folder.
"""
