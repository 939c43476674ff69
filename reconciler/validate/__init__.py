"""Check party files: each file against its JSON Schema, then the rules that span files.

A file passes, in order: `normalise` (the loaded data as validate reads it, secrets left out and codes in
canonical case, as new data), `schema` (the JSON Schemas, applied by jsonschema-rs and worded by jsonschema)
and `build` (the rules inside one file, and what a valid file declares); `file.check_file` runs one file
through them. `folder` scans a parties directory and checks the `rules` across its files: `validate_path`
returns every problem and, when there are no errors, the `DesiredState`. `names` says what the files are
called; `problems` reports a problem at its place in the file.
"""

from reconciler.validate.file import Checked, check_file
from reconciler.validate.folder import ValidationResult, require_party_path, validate_path
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
    "require_party_path",
    "schema_directory",
    "validate_path",
]
