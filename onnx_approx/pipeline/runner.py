"""Resumable steps: each step's folder holds a marker with the fingerprint of its inputs; a step whose
marker matches is skipped, so an interrupted or edited run redoes only what changed.

A fingerprint covers the recipe fields the step reads, the fingerprints of the steps it depends on and the
package version. Steps write into a temporary folder renamed into place when they succeed; a step that
checkpoints itself (the search) instead works in a stable partial folder that survives an interruption
and is kept only while the fingerprint is the same. Shared steps (fine-tuning, analysis: they depend on
model, task, seed and their budgets only) live in a cache folder keyed by the fingerprint, so recipes that
differ only in goal fine-tune once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from onnx_approx.io_utils import atomic_output_dir, atomic_write_text, read_json

log = logging.getLogger(__name__)

MARKER_FILE = "step.json"
STEPS_DIR = "steps"


def package_version() -> str:
    try:
        return version("onnx-approx")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


@dataclass(frozen=True)
class Step:
    """One step: `run(ctx, folder)` writes its results into `folder` and returns facts kept in the marker;
    `inputs(ctx)` is what it reads from the recipe (JSON-ready)."""

    name: str
    run: Callable[[Any, Path], dict[str, Any] | None]
    inputs: Callable[[Any], dict[str, Any]]
    deps: tuple[str, ...] = ()
    shared: bool = False  # kept in the cache folder, keyed by fingerprint
    checkpoints: bool = False  # resumes by itself inside its (partial) folder


@dataclass
class StepRecord:
    """What happened to a step in this run: its folder, marker contents, and whether it was reused."""

    name: str
    folder: Path
    marker: dict[str, Any]
    reused: bool


def fingerprint(name: str, inputs: dict[str, Any], deps: dict[str, str], package: str) -> str:
    text = json.dumps({"step": name, "inputs": inputs, "deps": deps, "version": package}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Runner:
    """Runs `steps` in order for `ctx`; `out` holds this run's step folders, `cache` the shared ones.

    `ctx.folders` (a dict) receives each step's folder before the steps after it run, so they find its results.
    """

    def __init__(self, steps: list[Step], ctx: Any, out: Path, cache: Path, package: str | None = None):
        names = [s.name for s in steps]
        for step in steps:
            unknown = [d for d in step.deps if d not in names[: names.index(step.name)]]
            if unknown:
                raise ValueError(f"step {step.name!r} depends on {unknown}, which do not run before it")
        self.steps, self.ctx, self.out, self.cache = steps, ctx, Path(out), Path(cache)
        self.package = package or package_version()
        self.records: dict[str, StepRecord] = {}

    def folder(self, step: Step, fp: str) -> Path:
        return self.cache / f"{step.name}-{fp[:16]}" if step.shared else self.out / STEPS_DIR / step.name

    def run(self, from_step: str | None = None) -> dict[str, StepRecord]:
        """Every step in order; `from_step` and the steps after it run even when their markers match."""
        names = [s.name for s in self.steps]
        if from_step is not None and from_step not in names:
            raise ValueError(f"--from-step must be one of {', '.join(names)}, got {from_step!r}")
        forced = set(names[names.index(from_step):]) if from_step else set()
        fingerprints: dict[str, str] = {}
        for number, step in enumerate(self.steps, 1):
            inputs = step.inputs(self.ctx)
            deps = {d: fingerprints[d] for d in step.deps}
            fp = fingerprints[step.name] = fingerprint(step.name, inputs, deps, self.package)
            folder = self.ctx.folders[step.name] = self.folder(step, fp)
            marker = _read_marker(folder)
            if step.name not in forced and marker is not None and marker.get("fingerprint") == fp:
                log.info("[%d/%d] %s: unchanged, reusing %s", number, len(self.steps), step.name, folder)
                self.records[step.name] = StepRecord(step.name, folder, marker, reused=True)
                continue
            reason = "forced" if step.name in forced else ("inputs changed" if marker else "not done yet")
            log.info("[%d/%d] %s (%s) -> %s", number, len(self.steps), step.name, reason, folder)
            marker = {"step": step.name, "fingerprint": fp, "inputs": inputs, "deps": deps, "version": self.package}
            started = time.perf_counter()
            self.records[step.name] = StepRecord(step.name, folder, marker, reused=False)
            if step.checkpoints:
                self._run_checkpointed(step, folder, marker, started, restart=step.name in forced)
            else:
                with atomic_output_dir(folder, overwrite=True) as tmp:
                    self._finish(step, tmp, marker, started, step.run(self.ctx, tmp))
            log.info("[%d/%d] %s done in %.0f s", number, len(self.steps), step.name, marker["seconds"])
        return self.records

    def _finish(self, step: Step, folder: Path, marker: dict[str, Any], started: float,
                facts: dict[str, Any] | None) -> None:
        marker.update(seconds=time.perf_counter() - started, finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      facts=facts or {})
        atomic_write_text(folder / MARKER_FILE, json.dumps(marker, indent=2, default=str) + "\n")

    def _run_checkpointed(self, step: Step, folder: Path, marker: dict[str, Any], started: float,
                          restart: bool) -> None:
        """Work in FOLDER's partial sibling, kept across interruptions while the fingerprint stays the same."""
        partial = folder.with_name(f".{folder.name}.partial")
        tag = folder.with_name(f".{folder.name}.partial.fingerprint")
        if restart or not tag.is_file() or tag.read_text() != marker["fingerprint"]:
            shutil.rmtree(partial, ignore_errors=True)
            atomic_write_text(tag, marker["fingerprint"])
        elif partial.exists():
            log.info("%s: resuming the interrupted work in %s", step.name, partial)
        facts = step.run(self.ctx, partial)
        self._finish(step, partial, marker, started, facts)
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.replace(old)
        partial.replace(folder)
        shutil.rmtree(old, ignore_errors=True)
        tag.unlink()


def _read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER_FILE
    return read_json(path) if path.is_file() else None
