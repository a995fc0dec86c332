"""The model store: the catalogue of model bundles, installing them into a models
directory, verifying them, listing them, and handing engines a checked bundle directory.

The parts: `catalogue` (reading and validating `models/*.toml`), `fetch` (wheels, downloads,
archives, post-steps, progress), `install` (atomic, verified installs), `trust` (the
first-use record of downloads the catalogue does not pin), `check` (the load-time check and
`verify`), `listing` (`edged models list`), `layout` (the models directory's own files).
"""

from edged.store.catalogue import Bundle, Catalogue, CatalogueError, load_catalogue
from edged.store.check import Problem, bundle_path, check_bundle, tree_digest, verify
from edged.store.fetch import Progress, SilentProgress, StderrProgress
from edged.store.install import install
from edged.store.layout import FIRST_USE, STAMP, default_models_dir
from edged.store.listing import BundleRow, State, Trust, list_bundles, print_list

__all__ = [
    "FIRST_USE",
    "STAMP",
    "Bundle",
    "BundleRow",
    "Catalogue",
    "CatalogueError",
    "Problem",
    "Progress",
    "SilentProgress",
    "State",
    "StderrProgress",
    "Trust",
    "bundle_path",
    "check_bundle",
    "default_models_dir",
    "install",
    "list_bundles",
    "load_catalogue",
    "print_list",
    "tree_digest",
    "verify",
]
