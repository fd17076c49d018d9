"""``retail-edge-rules``: serve the rules engine (``serve``) or compile and check a rules directory (``compile``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn
import wasmtime

from retail_edge.common.logging import configure_logging
from retail_edge.common.settings import SettingsError
from retail_edge.rules import settings as rules_settings
from retail_edge.rules.engine import Limits, RuleEngine, RuleLoadError

log = logging.getLogger("retail_edge.rules")


def compile_dir(rules_dir: Path) -> int:
    """Compile every .wat named in rules.yaml to a sibling .wasm and check the manifest, as a deploy step."""
    engine = RuleEngine(Limits(fuel=0, memory_bytes=65536, time_limit_s=1.0))
    try:
        for source in sorted(rules_dir.glob("*.wat")):
            compiled = source.with_suffix(".wasm")
            module = engine.compile(source)
            # Module.serialize() output is tied to this wasmtime build, so write portable wasm bytes instead.
            compiled.write_bytes(wasmtime.wat2wasm(source.read_text()))
            log.info(
                "compiled rule",
                extra={
                    "source": str(source),
                    "wasm": str(compiled),
                    "exports": [export.name for export in module.exports],
                },
            )
        ruleset = engine.load(rules_dir)
    except RuleLoadError as exc:
        print(f"retail-edge-rules: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(f"rules version {ruleset.version}: {', '.join(rule.name for rule in ruleset.rules)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="retail-edge-rules",
        description="Store pricing and promo rules engine. Settings come from a YAML file and "
        f"{rules_settings.ENV_PREFIX}* environment variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve /price, /promo/fragment, /healthz and /metrics")
    serve.add_argument("--config", type=Path, help=f"YAML settings file (or ${rules_settings.ENV_PREFIX}CONFIG)")
    compile_cmd = sub.add_parser("compile", help="compile the .wat rules of a directory to .wasm and check them")
    compile_cmd.add_argument("rules_dir", type=Path, help="directory with rules.yaml and the rule modules")
    args = parser.parse_args(argv)

    if args.command == "compile":
        configure_logging("rules-compile", "INFO")
        return compile_dir(args.rules_dir)
    if args.config is not None:
        os.environ[f"{rules_settings.ENV_PREFIX}CONFIG"] = str(args.config)
    try:
        settings = rules_settings.load()
    except SettingsError as exc:
        print(f"retail-edge-rules: {exc}", file=sys.stderr)
        return 2
    configure_logging("rules", settings.log_level)
    uvicorn.run(
        "retail_edge.rules.api:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
