"""mkdocs hook: replace ``<!-- cli-reference -->`` with the help of every ``mri-genprior`` command.

The text comes from :func:`mri_genprior.cli.build_parser`, so the reference cannot drift
from the parser.
"""

MARKER = "<!-- cli-reference -->"


def cli_reference() -> str:
    import argparse

    from mri_genprior.cli import build_parser

    parser = build_parser()
    parser.prog = "mri-genprior"
    sections = ["```text\n" + parser.format_help() + "```"]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        sections.append(f"## `mri-genprior {name}`\n\n```text\n{sub.format_help()}```")
    return "\n\n".join(sections)


def on_page_markdown(markdown, page, config, files):
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
