//! The ledger: which valid events reached the gateway (2xx), so an
//! end-to-end test can compare with the database.
//!
//! `<file>` gets one eventId per line, each id once: the valid unique events
//! of every POST answered 2xx, plus re-sent events whose original POST failed
//! but whose re-send got through. `<file>.summary.json` gets the run summary.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::stats::LedgerTotals;

/// Event ids of one POST, kept until its outcome is known.
#[derive(Debug, Clone, Default)]
pub struct LedgerEntry {
    /// New valid events.
    pub valid_unique_ids: Vec<String>,
    /// Re-sent valid events.
    pub duplicate_ids: Vec<String>,
}

/// Writes delivered event ids to a file.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    out: BufWriter<File>,
    written: HashSet<String>,
    not_delivered: HashSet<String>,
}

impl Ledger {
    /// Creates (truncates) the ledger file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(File::create(path)?),
            written: HashSet::new(),
            not_delivered: HashSet::new(),
        })
    }

    /// The path of the id file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the summary file (`<file>.summary.json`).
    pub fn summary_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".summary.json");
        PathBuf::from(p)
    }

    /// Records a POST's outcome: `delivered` when the gateway answered 2xx.
    pub fn record(&mut self, entry: &LedgerEntry, delivered: bool) -> io::Result<()> {
        if delivered {
            for id in entry.valid_unique_ids.iter().chain(&entry.duplicate_ids) {
                if self.written.insert(id.clone()) {
                    self.not_delivered.remove(id);
                    writeln!(self.out, "{id}")?;
                }
            }
        } else {
            for id in &entry.valid_unique_ids {
                if !self.written.contains(id) {
                    self.not_delivered.insert(id.clone());
                }
            }
        }
        Ok(())
    }

    /// Totals so far.
    pub fn totals(&self) -> LedgerTotals {
        LedgerTotals {
            path: self.path.display().to_string(),
            ids_written: self.written.len() as u64,
            ids_not_delivered: self.not_delivered.len() as u64,
        }
    }

    /// Flushes the id file and writes `summary` next to it.
    pub fn finish(mut self, summary: &impl Serialize) -> io::Result<PathBuf> {
        self.out.flush()?;
        let summary_path = self.summary_path();
        let mut f = BufWriter::new(File::create(&summary_path)?);
        serde_json::to_writer_pretty(&mut f, summary)?;
        writeln!(f)?;
        f.flush()?;
        Ok(summary_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(unique: &[&str], dups: &[&str]) -> LedgerEntry {
        LedgerEntry {
            valid_unique_ids: unique.iter().map(|s| s.to_string()).collect(),
            duplicate_ids: dups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn writes_each_delivered_id_once_and_recovers_failed_originals() {
        let path = std::env::temp_dir().join(format!("ledger-unit-{}", std::process::id()));
        let mut l = Ledger::create(&path).unwrap();
        l.record(&entry(&["a", "b"], &[]), true).unwrap();
        l.record(&entry(&["c", "d"], &["a"]), false).unwrap(); // failed POST
        l.record(&entry(&["e"], &["c", "a"]), true).unwrap(); // re-send of c got through
        assert_eq!(l.totals().ids_written, 4);
        assert_eq!(l.totals().ids_not_delivered, 1); // d
        let summary_path = l.finish(&serde_json::json!({"ok": true})).unwrap();
        let ids = std::fs::read_to_string(&path).unwrap();
        assert_eq!(ids, "a\nb\ne\nc\n");
        assert!(std::fs::read_to_string(&summary_path)
            .unwrap()
            .contains("\"ok\""));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&summary_path);
    }
}
