"""Tables for `codelm models`: the family registry and the real sizes, as a person reads them."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from codelm.models import all_families


def print_families() -> None:
    table = Table(title="codelm model families")
    for col in ("family", "architecture", "FIM", "sentinels", "file separator", "chat", "sizes"):
        table.add_column(col)
    for f in all_families():
        fim = f.fim.order.upper() if f.fim else "none"
        sentinels = " ".join(f.fim.sentinels) if f.fim else "-"
        chat = "yes" + ("" if not f.chat or f.chat.system_role else " (no system)") if f.chat else "no"
        row = (
            f.name,
            f.architecture,
            fim,
            sentinels,
            f.file_separator or "-",
            chat,
            ", ".join(f.sizes) or "-",
        )
        table.add_row(*map(escape, row))  # Seed-Coder's [fim-...] tokens look like rich markup
    _console().print(table)


def print_sizes() -> None:
    from codelm.models.sizes import count_parameters, format_count, size_config

    table = Table(title="real sizes (built on the meta device)")
    for col in ("family", "size", "parameters", "published", "diff", "source"):
        table.add_column(col)
    for f in all_families():
        for name, spec in f.sizes.items():
            n = count_parameters(size_config(f, name))
            table.add_row(
                f.name,
                name,
                f"{n:,}",
                format_count(spec.published_params),
                f"{(n / spec.published_params - 1) * 100:+.2f}%",
                escape(spec.source),
            )
    _console().print(table)


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=200)  # no wrapping in pipes and logs
