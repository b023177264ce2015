"""``switchboard train --with-corrections FILE``: a new examples file with agents' corrections.

Reads the examples the configuration trains on (every issue type's inline examples and
examples files) and a corrections file (``switchboard corrections export``), and writes one
examples CSV: the configured examples plus each retyped message's text under the type agents
gave it (see :func:`services.router.corrections.with_corrections`). Nothing is retrained
here: pointing the issue types' ``examples_file`` at the new file is a configuration change,
and the services build the new model when they reload it, off the event loop, keeping the
old one if the build fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from libs.common.config import ConfigError
from services.router.classify_eval import read_config
from services.router.corrections import read_corrections, with_corrections, write_examples


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchboard train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the configuration file")
    parser.add_argument(
        "--with-corrections",
        type=Path,
        required=True,
        metavar="FILE",
        help="agents' corrections as JSON lines (switchboard corrections export)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the examples CSV to write")
    args = parser.parse_args(argv)
    try:
        specs, _ = read_config(args.config)
        corrections = read_corrections(args.with_corrections)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"switchboard train: {exc}", file=sys.stderr)
        return 1
    examples = [(example, spec.name) for spec in specs for example in spec.examples]
    training = with_corrections(examples, corrections, (spec.name for spec in specs))
    write_examples(args.out, training.rows)
    print(
        f"{args.out}: {len(training.rows)} examples, {training.added} of them texts agents "
        f"corrected ({training.relabelled} configured examples they relabelled were dropped); "
        f"left out: {training.without_text} corrections without a text, "
        f"{training.unconfigured} to types the configuration does not have"
    )
    print(
        "to use it, point every issue type's examples_file at it (relative to "
        f"{args.config.parent}/); the services rebuild the model when they reload the file"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
