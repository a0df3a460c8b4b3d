"""Compaction and vacuum of the ``events`` and ``rejected`` tables, keeping every registered model's data.

Each ingest micro-batch adds a few small files; compaction (delta-rs ``optimize.compact``) rewrites
each partition's small files into files of about ``target-file-mb``, so the file count follows the
data size, not the number of micro-batches. Vacuum then deletes files that no version still in
reach needs once they are older than ``retention-hours``, including files of micro-batches that
never committed (a crashed ingest leaves them), but never a file of an ``events`` version that a
registered model version names in its ``delta_version`` tag: those versions stay readable by time
travel, so every registered model can be rebuilt from its data. When the registry cannot be read,
nothing is vacuumed. The tables keep their whole log (``delta.enableExpiredLogCleanup`` is off at
creation and for these commits): a version whose log entries are gone could not be read at all.

Run after each batch generation (``headwater.maintenance.after-generation``) and by
``headwater maintain --conf FILE``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from headwater import delta_tables
from headwater.config import Config

log = logging.getLogger(__name__)


def maintain_tables(config: Config, keep_versions: Iterable[int] | None = None) -> dict[str, dict]:
    """Compact and vacuum both tables; ``keep_versions`` (default: the registry's) are ``events`` versions to keep.

    Returns per table: files before and after, files compacted away and files vacuumed.
    """
    from deltalake import PostCommitHookProperties

    settings = config.section("headwater.maintenance")
    options = delta_tables.storage_options(config) or None
    if keep_versions is None:
        keep_versions = _registered_versions(config)
    hooks = PostCommitHookProperties(cleanup_expired_logs=False)
    report = {}
    for name in (delta_tables.EVENTS, delta_tables.REJECTED):
        uri = config.table_uri(name)
        table = delta_tables.open_table(uri, storage_options=options)
        if table is None:
            continue
        before = len(table.file_uris())
        compacted = table.optimize.compact(target_size=int(settings["target-file-mb"] * 2**20),
                                           post_commithook_properties=hooks)
        entry = {"files_before": before, "files_removed_by_compaction": compacted.get("numFilesRemoved", 0),
                 "files_added_by_compaction": compacted.get("numFilesAdded", 0), "vacuumed": None}
        if keep_versions is not None:
            table = delta_tables.open_table(uri, storage_options=options)
            keep = sorted(v for v in set(keep_versions) if 0 <= v <= table.version()) if name == delta_tables.EVENTS \
                else []
            vacuumed = table.vacuum(retention_hours=settings["retention-hours"], dry_run=False,
                                    enforce_retention_duration=False, full=True, keep_versions=keep or None,
                                    post_commithook_properties=hooks)
            entry["vacuumed"] = len(vacuumed)
            entry["kept_versions"] = keep
        entry["files_after"] = len(delta_tables.open_table(uri, storage_options=options).file_uris())
        report[name] = entry
        log.info("maintained %s: %s", uri, entry)
    return report


def _registered_versions(config: Config) -> set[int] | None:
    from headwater.registry import registered_data_versions

    try:
        return registered_data_versions(config)
    except Exception:  # without the registry no file is provably unneeded
        log.exception("cannot read the registered models' data versions from MLflow: compacting, not vacuuming")
        return None


__all__ = ["maintain_tables"]
