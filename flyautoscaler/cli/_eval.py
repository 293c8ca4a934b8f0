"""``flyautoscaler eval``: collect once and print the Machine counts."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Mapping

from flyautoscaler._collect import Collection
from flyautoscaler._errors import ExpressionError
from flyautoscaler._plan import bound_targets
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._results import explain_decision
from flyautoscaler._validation import check_app_name
from flyautoscaler.cli._common import EXIT_OK, CommandError, close_quietly, load
from flyautoscaler.cli._logging import configure_logging, secrets_of
from flyautoscaler.config import Config

__all__ = ["evaluate"]


def evaluate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = load(args, environ)
    configure_logging(
        verbose=config.verbose,
        secrets=secrets_of(config),
        quiet=True,
        level=getattr(args, "log_level", None),
    )
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
            if args.explain:
                text = _explain(reconciler, collection, config)
            else:
                text = json.dumps(_targets(reconciler, collection, config), indent=2)
        except ExpressionError as exc:
            raise CommandError(f"cannot calculate {exc.count}: {exc}") from exc
    finally:
        for collector in collectors:
            close_quietly(collector)
    sys.stdout.write(text + "\n")
    return EXIT_OK


def _targets(
    reconciler: Reconciler, collection: Collection, config: Config
) -> dict[str, dict[str, int | None]]:
    """Return the four counts; list the Machines when the expressions count them."""
    if not reconciler.uses_machine_counts:
        return reconciler.targets(collection.values).as_dict()
    if not config.api_token:
        raise CommandError(
            "the expressions use the current Machine counts (created_machine_count "
            "or started_machine_count): set FAS_API_TOKEN so eval can list the "
            "app's Machines (read only)"
        )
    with _client(reconciler, config):
        return reconciler.targets(collection.values).as_dict()


@contextlib.contextmanager
def _client(reconciler: Reconciler, config: Config) -> Iterator[None]:
    """Give *reconciler* a Machines API client for the block; close it after."""
    from flyautoscaler._http import request_timeouts  # noqa: PLC0415 - only here
    from flyautoscaler.fly import FlapsHTTPClient  # noqa: PLC0415 - only here

    with FlapsHTTPClient(
        reconciler.app_name,
        config.api_token,
        base_url=config.flaps_base_url,
        timeout=request_timeouts(config.request_timeout),
    ) as client:
        reconciler.client = client
        try:
            yield
        finally:
            reconciler.client = None


def _explain(reconciler: Reconciler, collection: Collection, config: Config) -> str:
    """Return one pass's decision in words; list the Machines if a token is set."""
    if config.api_token:
        with _client(reconciler, config):
            return reconciler.explain(collection)
    raw = reconciler.targets(collection.values)
    targets, reasons = bound_targets(raw)
    lines = explain_decision(
        reconciler.app_name,
        (0, 0),
        raw=raw,
        targets=targets,
        reasons=tuple(reasons),
        fallback_error=None,
    )
    lines[0] = (
        f"{reconciler.app_name}: Machines not listed (no API token): set "
        "FAS_API_TOKEN to see the steps a pass would take"
    )
    return "\n".join(lines)
