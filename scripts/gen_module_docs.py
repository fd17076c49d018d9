#!/usr/bin/env python
"""Render module documentation (DOCUMENTATION, EXAMPLES, RETURN) to Markdown under docs/modules/.

The documentation is read through `ansible-doc --json`, so doc fragments (connection options,
attributes) are merged exactly as ansible-doc shows them.

Usage:
    scripts/gen_module_docs.py                 # write docs/modules/<name>.md for every module
    scripts/gen_module_docs.py pve_lxc         # only the named modules
    scripts/gen_module_docs.py --check ...     # exit 1 and list the files that are out of date
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "retail.edge"
MODULES_DIR = ROOT / "plugins" / "modules"
DOCS_DIR = ROOT / "docs" / "modules"
COLLECTIONS_PATH = ROOT / ".build" / "collections"

# Ansible markup: C() I() B() U() M() end at the first ')'; O() V() RV() E() allow '\)' and '\\'.
_MARKUP_RE = re.compile(r"\b(C|I|B|U|M|O|V|RV|E|P|L)\(((?:\\.|[^)\\])*)\)|HORIZONTALLINE")


def ensure_collection_link() -> None:
    """Make this checkout importable as ansible_collections/retail/edge for ansible-doc."""
    parent = COLLECTIONS_PATH / "ansible_collections" / "retail"
    parent.mkdir(parents=True, exist_ok=True)
    link = parent / "edge"
    if link.is_symlink() and link.resolve() == ROOT:
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(ROOT)


def load_docs(modules: Iterable[str]) -> dict[str, Any]:
    """Return ansible-doc's JSON for the modules, keyed by short module name."""
    ensure_collection_link()
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS_PATH)
    env["ANSIBLE_NOCOLOR"] = "1"
    names = [f"{COLLECTION}.{module}" for module in modules]
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    proc = subprocess.run(
        [str(ansible_doc), "--json", "-t", "module", *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ansible-doc failed with exit code {proc.returncode}:\n{proc.stderr}")
    data = json.loads(proc.stdout)
    missing = [name for name in names if name not in data]
    if missing:
        raise SystemExit(f"ansible-doc returned nothing for {', '.join(missing)}:\n{proc.stderr}")
    return {name.rsplit(".", 1)[1]: data[name] for name in names}


# --- markup --------------------------------------------------------------------------------


def _escape_text(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def markup(text: Any) -> str:
    """Convert Ansible documentation markup to Markdown, escaping everything else."""
    source = str(text)
    parts: list[str] = []
    position = 0
    for match in _MARKUP_RE.finditer(source):
        parts.append(_escape_text(source[position : match.start()]))
        position = match.end()
        if match.group(0) == "HORIZONTALLINE":
            parts.append("\n\n---\n\n")
            continue
        kind, content = match.group(1), match.group(2)
        parts.append(_render_markup(kind, content))
    parts.append(_escape_text(source[position:]))
    return "".join(parts)


def _render_markup(kind: str, content: str) -> str:
    if kind in ("O", "V", "RV", "E"):
        return _code(_unescape(content))
    if kind == "L":
        text, _comma, url = content.rpartition(",")
        return f"[{_escape_text(text)}]({url})"
    renderers = {
        "C": _code,
        "M": _code,
        "P": lambda text: _code(text.split("#", 1)[0]),
        "I": lambda text: f"*{_escape_text(text)}*",
        "B": lambda text: f"**{_escape_text(text)}**",
        "U": lambda text: f"<{text}>",
    }
    return renderers[kind](content)


def paragraphs(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [markup(item) for item in items]


# --- sections ------------------------------------------------------------------------------


def _facts(spec: dict[str, Any], *, for_return: bool = False) -> str:
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements"):
        kind = f"list of {spec['elements']}"
    facts = [f"*{kind}*"]
    if spec.get("required"):
        facts.append("required")
    if spec.get("aliases"):
        facts.append("aliases: " + ", ".join(_code(alias) for alias in spec["aliases"]))
    if spec.get("choices"):
        facts.append("choices: " + ", ".join(_code(str(choice)) for choice in spec["choices"]))
    if "default" in spec and spec["default"] is not None:
        facts.append(f"default: {_code(json.dumps(spec['default']))}")
    if for_return and spec.get("returned"):
        facts.append(f"returned: {markup(spec['returned'])}")
    return ", ".join(facts)


def render_options(options: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for name in sorted(options):
        spec = options[name]
        lines.append(f"### {_code(prefix + name)}")
        lines.append("")
        lines.append(_facts(spec))
        lines.append("")
        for paragraph in paragraphs(spec.get("description")):
            lines.extend([paragraph, ""])
        if spec.get("suboptions"):
            lines.extend(render_options(spec["suboptions"], f"{prefix}{name}."))
    return lines


def render_returns(returns: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for name in sorted(returns):
        spec = returns[name]
        lines.append(f"### {_code(prefix + name)}")
        lines.append("")
        lines.append(_facts(spec, for_return=True))
        lines.append("")
        for paragraph in paragraphs(spec.get("description")):
            lines.extend([paragraph, ""])
        if "sample" in spec:
            lines.extend(["Sample:", "", "```json", json.dumps(spec["sample"], indent=2, sort_keys=True), "```", ""])
        if spec.get("contains"):
            lines.extend(
                render_returns(
                    spec["contains"], f"{prefix}{name}[]." if spec.get("type") == "list" else f"{prefix}{name}."
                )
            )
    return lines


def render_attributes(attributes: dict[str, Any]) -> list[str]:
    lines = ["| Attribute | Support | Description |", "| --- | --- | --- |"]
    for name in sorted(attributes):
        spec = attributes[name]
        description = " ".join(paragraphs(spec.get("description")) + paragraphs(spec.get("details")))
        if spec.get("membership"):
            description += " Action group: " + ", ".join(_code(group) for group in spec["membership"]) + "."
        lines.append(f"| {_code(name)} | {spec.get('support', '')} | {description.replace('|', '&#124;')} |")
    return [*lines, ""]


def render_seealso(entries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in entries:
        if "module" in entry:
            lines.append(
                f"- {_code(entry['module'])}"
                + (f": {markup(entry['description'])}" if entry.get("description") else "")
            )
        elif "link" in entry:
            lines.append(f"- [{_escape_text(entry['name'])}]({entry['link']}): {markup(entry.get('description', ''))}")
    return [*lines, ""]


def render(module: str, data: dict[str, Any]) -> str:
    doc = data["doc"]
    lines = [
        f"# {COLLECTION}.{module}",
        "",
        "<!-- Generated by scripts/gen_module_docs.py from the module's DOCUMENTATION, EXAMPLES and RETURN;",
        "     edit the module and run the script again instead of editing this file. -->",
        "",
        f"{markup(doc.get('short_description', ''))}.",
        "",
        "## Synopsis",
        "",
    ]
    for paragraph in paragraphs(doc.get("description")):
        lines.extend([paragraph, ""])
    if doc.get("requirements"):
        lines.extend(["## Requirements", "", *[f"- {markup(item)}" for item in doc["requirements"]], ""])

    lines.extend(["## Parameters", "", *render_options(doc.get("options") or {})])
    if doc.get("attributes"):
        lines.extend(["## Attributes", "", *render_attributes(doc["attributes"])])
    if doc.get("notes"):
        lines.extend(["## Notes", "", *[f"- {paragraph}" for paragraph in paragraphs(doc["notes"])], ""])
    if doc.get("seealso"):
        lines.extend(["## See also", "", *render_seealso(doc["seealso"])])

    if data.get("examples"):
        lines.extend(["## Examples", "", "```yaml", data["examples"].strip("\n"), "```", ""])
    if data.get("return"):
        lines.extend(["## Return values", "", *render_returns(data["return"])])
    authors = doc.get("author") or []
    authors = authors if isinstance(authors, list) else [authors]
    lines.extend(["## Authors", "", *[f"- {_escape_text(author)}" for author in authors]])
    return "\n".join(lines).rstrip("\n") + "\n"


def all_modules() -> list[str]:
    return sorted(path.stem for path in MODULES_DIR.glob("*.py") if not path.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="short module names (default: every module)")
    parser.add_argument("--check", action="store_true", help="report out-of-date files instead of writing them")
    args = parser.parse_args(argv)

    modules = args.modules or all_modules()
    stale = []
    for module, data in load_docs(modules).items():
        target = DOCS_DIR / f"{module}.md"
        text = render(module, data)
        if target.is_file() and target.read_text() == text:
            continue
        stale.append(target.relative_to(ROOT))
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    if args.check and stale:
        print("out of date (run scripts/gen_module_docs.py): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
