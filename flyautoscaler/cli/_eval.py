"""``flyautoscaler eval``: collect once and print the Machine counts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from flyautoscaler._errors import ExpressionError
from flyautoscaler._validation import check_app_name
from flyautoscaler.cli._common import EXIT_OK, CommandError, close_quietly, load
from flyautoscaler.cli._logging import configure_logging, secrets_of

__all__ = ["evaluate"]


def evaluate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = load(args, environ)
    configure_logging(verbose=config.verbose, secrets=secrets_of(config), quiet=True)
    config.validate()
    if args.app:
        check_app_name(args.app, "--app", field="app_name", wildcard=False)
    collectors = config.build_collectors(environ)
    try:
        reconciler = config.new_reconciler(collectors)
        reconciler.app_name = args.app or config.app_name
        collection = reconciler.collect()
        if collection.errors:
            error = collection.errors[0]
            raise CommandError(f"metrics collection failed: {error}") from error
        try:
            result = reconciler.targets(collection.values).as_dict()
        except ExpressionError as exc:
            raise CommandError(f"cannot calculate {exc.count}: {exc}") from exc
    finally:
        for collector in collectors:
            close_quietly(collector)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return EXIT_OK
