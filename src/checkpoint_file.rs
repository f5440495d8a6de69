//! Kafka's checkpoint text framing (`CheckpointFile`): a version line, an entry count line,
//! then one line per entry. Shared by the leader-epoch checkpoint (`partition::epochs`) and the
//! replication-offset checkpoint (`replication::checkpoint`); each parses its own entry lines.
//!
//! Invariant: a count above the caller's bound, a wrong version or fewer lines than counted
//! refuse the whole file (no partial result, no allocation from a damaged count).

/// The file's text: `version`, the number of entries, then each entry on its own line.
pub fn encode(version: i32, entries: impl ExactSizeIterator<Item = String>) -> String {
    let mut out = format!("{version}\n{}\n", entries.len());
    for entry in entries {
        out.push_str(&entry);
        out.push('\n');
    }
    out
}

/// The entry lines of `text`, after checking its version and count (at most `entries_max`).
pub fn entry_lines(text: &str, version: i32, entries_max: usize) -> Result<Vec<&str>, String> {
    let mut lines = text.lines();
    let mut next = |what: &str| lines.next().ok_or_else(|| format!("missing {what}"));
    let found: i32 = next("version")?
        .trim()
        .parse()
        .map_err(|_| "bad version line".to_owned())?;
    if found != version {
        return Err(format!("unsupported version {found}"));
    }
    let count: usize = next("entry count")?
        .trim()
        .parse()
        .map_err(|_| "bad entry count".to_owned())?;
    if count > entries_max {
        return Err(format!("{count} entries"));
    }
    (0..count).map(|_| next("entry")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_refuses_bad_headers() {
        let text = encode(0, vec!["a 1".to_owned(), "b 2".to_owned()].into_iter());
        assert_eq!(text, "0\n2\na 1\nb 2\n");
        assert_eq!(entry_lines(&text, 0, 10), Ok(vec!["a 1", "b 2"]));
        assert!(entry_lines(&text, 1, 10).is_err());
        assert!(entry_lines(&text, 0, 1).is_err());
        assert!(entry_lines("0\n3\na 1\n", 0, 10).is_err());
        assert!(entry_lines("x\n", 0, 10).is_err());
    }
}
