"""Model families: formats, chat templates, stop rules, real sizes, detection, tiny checkpoints."""

from codelm.models.registry import FAMILY_NAMES, Family, all_families, get_family

__all__ = ["FAMILY_NAMES", "Family", "all_families", "get_family"]
