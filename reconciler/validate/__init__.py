"""Check party files: each file against its JSON Schema, then the rules that span files.

The stages, in the order a file passes them:

- `normalise`: the loaded data as validate reads it (secrets left out, codes in canonical case), as new data;
- `schema`: the JSON Schemas, applied by jsonschema-rs and worded by jsonschema;
- `build`: the rules inside one file, and what a valid file declares (`file.check` runs one file through);
- `rules`: the rules across the files of a parties directory;
- `folder`: the directory scan, and `validate_path`, which returns every problem and the `DesiredState`.
"""

from reconciler.validate.file import Checked, check_file
from reconciler.validate.folder import ValidationResult, validate_path
from reconciler.validate.names import DEFAULT_FILE, PARTY_FILE
from reconciler.validate.normalise import case_fields, holder, read_back
from reconciler.validate.schema import DEFAULT_SCHEMA, PARTY_SCHEMA, schema_directory

__all__ = [
    "DEFAULT_FILE",
    "DEFAULT_SCHEMA",
    "PARTY_FILE",
    "PARTY_SCHEMA",
    "Checked",
    "ValidationResult",
    "case_fields",
    "check_file",
    "holder",
    "read_back",
    "schema_directory",
    "validate_path",
]
