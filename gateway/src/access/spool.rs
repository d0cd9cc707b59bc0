//! The access-log spool: where records go while the store is slow or down, on local disk
//! under the data dir, until the writer replays them into the store.
//!
//! Layout: a directory of segment files `NNNNNNNNNNNNNNNNNNNN.spool` (a 20-digit,
//! ever-increasing id), oldest first. Records are appended to the one *active* segment;
//! a segment is *sealed* (flushed, synced, never written again) when it reaches its size or
//! when the writer wants to replay it. Only sealed segments are read, and a sealed segment is
//! deleted once every record in it is in the store. At start every segment left by a previous
//! process is sealed, so nothing is appended after a torn tail.
//!
//! Each record is one line: 8 hex digits of the CRC-32 of the JSON, a space, the record as
//! JSON, `\n`. A last line without its newline is a torn write (the process died mid-append)
//! and is ignored; a line whose checksum does not match is skipped and counted. Replaying a
//! segment twice is harmless: the store keeps a record once by its `(at, id)` key.
//!
//! **Invariant:** the spool never grows beyond `max_bytes`; a record that does not fit is
//! refused (the caller counts it as dropped), never written partially.

use gatehouse_registry::access::AccessRecord;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

const EXTENSION: &str = "spool";

/// Why the spool could not do something.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One record as a spool line.
pub fn encode(record: &AccessRecord) -> Vec<u8> {
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut line = Vec::with_capacity(json.len() + 10);
    line.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// What a spool line holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Record(Box<AccessRecord>),
    /// The checksum does not match, or the JSON is not a record.
    Corrupt,
}

/// Decodes one complete line (without its newline).
pub fn decode(line: &[u8]) -> Line {
    let (Some(crc), Some(json)) = (line.get(..8), line.get(9..)) else {
        return Line::Corrupt;
    };
    let expected = std::str::from_utf8(crc)
        .ok()
        .and_then(|c| u32::from_str_radix(c, 16).ok());
    if line.get(8) != Some(&b' ') || expected != Some(crc32fast::hash(json)) {
        return Line::Corrupt;
    }
    match serde_json::from_slice(json) {
        Ok(r) => Line::Record(Box::new(r)),
        Err(_) => Line::Corrupt,
    }
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    bytes: u64,
}

#[derive(Debug)]
struct Active {
    segment: Segment,
    file: File,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    pub written: u64,
    /// Records refused because the spool is at its limit.
    pub refused: u64,
}

/// The spool directory. Not synchronised itself: the access log shares it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sealed: VecDeque<Segment>,
    active: Option<Active>,
    next_id: u64,
    total_bytes: u64,
}

/// A sealed segment handed to the writer for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    pub id: u64,
    pub path: PathBuf,
}

impl Spool {
    /// Opens (creating) the spool directory; every segment already there is sealed.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut sealed = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata().map_err(io(&path))?.len();
            sealed.push(Segment { id, path, bytes });
        }
        sealed.sort_by_key(|s| s.id);
        let next_id = sealed.last().map_or(1, |s| s.id + 1);
        let total_bytes = sealed.iter().map(|s| s.bytes).sum();
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            sealed: sealed.into(),
            active: None,
            next_id,
            total_bytes,
        })
    }

    /// Bytes on disk, every segment together.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Whether anything is waiting to be replayed.
    pub fn is_empty(&self) -> bool {
        self.total_bytes == 0 && self.sealed.is_empty()
    }

    /// Whether one more small record would still fit.
    pub fn is_full(&self) -> bool {
        self.total_bytes >= self.max_bytes
    }

    /// Appends encoded lines in order, as many as fit under the limit. The data reaches the
    /// operating system before this returns; call [`Spool::sync_handle`] to make it durable.
    pub fn append(&mut self, lines: &[Vec<u8>]) -> Result<Appended, SpoolError> {
        let mut done = Appended::default();
        let mut buf: Vec<u8> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let len = line.len() as u64;
            if self.total_bytes + buf.len() as u64 + len > self.max_bytes {
                done.refused = (lines.len() - i) as u64;
                break;
            }
            buf.extend_from_slice(line);
            done.written += 1;
            let active_bytes = self.active.as_ref().map_or(0, |a| a.segment.bytes);
            if active_bytes + buf.len() as u64 >= self.segment_bytes {
                self.write_active(&buf)?;
                buf.clear();
                self.seal_active()?;
            }
        }
        if !buf.is_empty() {
            self.write_active(&buf)?;
        }
        Ok(done)
    }

    fn write_active(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        if self.active.is_none() {
            let id = self.next_id;
            self.next_id += 1;
            let path = self.dir.join(format!("{id:020}.{EXTENSION}"));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            self.active = Some(Active {
                segment: Segment { id, path, bytes: 0 },
                file,
            });
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        active
            .file
            .write_all(bytes)
            .map_err(io(&active.segment.path))?;
        active.segment.bytes += bytes.len() as u64;
        self.total_bytes += bytes.len() as u64;
        Ok(())
    }

    /// A handle on the active segment to `sync_data` outside the lock (`None`: no active
    /// segment, nothing unsynced).
    pub fn sync_handle(&self) -> Option<File> {
        self.active.as_ref().and_then(|a| a.file.try_clone().ok())
    }

    /// Seals the active segment (synced first), so it can be replayed.
    pub fn seal_active(&mut self) -> Result<(), SpoolError> {
        if let Some(active) = self.active.take() {
            active.file.sync_data().map_err(io(&active.segment.path))?;
            self.sealed.push_back(active.segment);
        }
        Ok(())
    }

    /// The oldest sealed segment; when there is none, the active one is sealed first.
    pub fn next_to_replay(&mut self) -> Result<Option<SealedSegment>, SpoolError> {
        if self.sealed.is_empty() {
            self.seal_active()?;
        }
        Ok(self.sealed.front().map(|s| SealedSegment {
            id: s.id,
            path: s.path.clone(),
        }))
    }

    /// Deletes a replayed segment.
    pub fn remove(&mut self, id: u64) -> Result<(), SpoolError> {
        if let Some(i) = self.sealed.iter().position(|s| s.id == id)
            && let Some(segment) = self.sealed.remove(i)
        {
            self.total_bytes = self.total_bytes.saturating_sub(segment.bytes);
            match std::fs::remove_file(&segment.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&segment.path)(e)),
            }
        }
        Ok(())
    }

    /// Moves a segment that cannot be read out of the way (`.unreadable`), so replay goes on.
    pub fn quarantine(&mut self, id: u64) -> Result<(), SpoolError> {
        if let Some(i) = self.sealed.iter().position(|s| s.id == id)
            && let Some(segment) = self.sealed.remove(i)
        {
            self.total_bytes = self.total_bytes.saturating_sub(segment.bytes);
            let target = segment.path.with_extension("unreadable");
            std::fs::rename(&segment.path, &target).map_err(io(&segment.path))?;
        }
        Ok(())
    }
}

/// Reads the records of one sealed segment, chunk by chunk.
#[derive(Debug)]
pub struct SegmentReader {
    pub segment: SealedSegment,
    reader: BufReader<File>,
    done: bool,
    /// Lines skipped because their checksum or JSON was wrong.
    pub corrupt: u64,
    /// Whether the segment ended with a torn (incomplete) line.
    pub torn: bool,
}

impl SegmentReader {
    pub fn open(segment: SealedSegment) -> Result<Self, SpoolError> {
        let file = File::open(&segment.path).map_err(io(&segment.path))?;
        Ok(SegmentReader {
            segment,
            reader: BufReader::with_capacity(256 * 1024, file),
            done: false,
            corrupt: 0,
            torn: false,
        })
    }

    /// Whether every line has been read.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Up to `max` more records, in file order.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<AccessRecord>, SpoolError> {
        let mut out = Vec::new();
        let mut line = Vec::with_capacity(512);
        while out.len() < max && !self.done {
            line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(io(&self.segment.path))?;
            if n == 0 {
                self.done = true;
                break;
            }
            if line.last() != Some(&b'\n') {
                // A torn tail: the writer died mid-line. Nothing follows it.
                self.torn = true;
                self.done = true;
                break;
            }
            line.pop();
            match decode(&line) {
                Line::Record(r) => out.push(*r),
                Line::Corrupt => self.corrupt += 1,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_registry::access::{AccessFlags, Decision};

    fn record(i: u64) -> AccessRecord {
        AccessRecord {
            id: format!("id-{i}"),
            at: time::OffsetDateTime::UNIX_EPOCH,
            request_id: format!("req-{i}"),
            trace_id: None,
            consumer: Some("edi".into()),
            key_id: None,
            subject: None,
            api: Some("orders".into()),
            major: Some(1),
            version: Some("1.0.0".into()),
            operation: Some("getOrder".into()),
            method: "GET".into(),
            path_template: None,
            path: "/orders/v1/x".into(),
            status: 200,
            decision: Decision::Allowed,
            reason: None,
            duration_us: i,
            upstream_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            client_addr: None,
            user_agent: Some("line\nbreak".into()),
            flags: AccessFlags::empty(),
        }
    }

    fn read_all(spool: &mut Spool) -> (Vec<u64>, u64, bool) {
        let mut ids = Vec::new();
        let (mut corrupt, mut torn) = (0, false);
        while let Some(seg) = spool.next_to_replay().unwrap() {
            let mut r = SegmentReader::open(seg.clone()).unwrap();
            while !r.is_done() {
                ids.extend(r.next_chunk(7).unwrap().iter().map(|x| x.duration_us));
            }
            corrupt += r.corrupt;
            torn |= r.torn;
            spool.remove(seg.id).unwrap();
        }
        (ids, corrupt, torn)
    }

    #[test]
    fn records_come_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, 2_000).unwrap();
        let lines: Vec<Vec<u8>> = (0..50).map(|i| encode(&record(i))).collect();
        assert_eq!(spool.append(&lines[..30]).unwrap().written, 30);
        assert_eq!(spool.append(&lines[30..]).unwrap().written, 20);
        assert!(spool.sealed.len() > 1, "small segments rotate");
        assert!(!spool.is_empty());
        let (ids, corrupt, torn) = read_all(&mut spool);
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        assert_eq!((corrupt, torn), (0, false));
        assert!(spool.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_limit_refuses_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let line = encode(&record(1));
        let max = line.len() as u64 * 3 + 10;
        let mut spool = Spool::open(dir.path(), max, 1 << 20).unwrap();
        let lines = vec![line.clone(); 5];
        assert_eq!(
            spool.append(&lines).unwrap(),
            Appended {
                written: 3,
                refused: 2
            }
        );
        assert!(spool.bytes() <= max);
        assert!(!spool.is_full() || spool.bytes() >= max);
        // Replaying frees room again.
        let (ids, _, _) = read_all(&mut spool);
        assert_eq!(ids.len(), 3);
        assert_eq!(spool.append(&lines[..1]).unwrap().written, 1);
    }

    #[test]
    fn a_torn_tail_and_a_corrupt_line_are_detected_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(dir.path(), 1 << 20, 1 << 20).unwrap();
            let lines: Vec<Vec<u8>> = (0..4).map(|i| encode(&record(i))).collect();
            spool.append(&lines).unwrap();
            // The process dies: no seal. Simulate a corrupted line and a torn append.
            let path = spool.active.as_ref().unwrap().segment.path.clone();
            let mut text = std::fs::read(&path).unwrap();
            let second = text.iter().position(|&b| b == b'\n').unwrap() + 1;
            text[second + 20] ^= 0x01; // flips a bit inside record 1's JSON
            let torn = encode(&record(99));
            text.extend_from_slice(&torn[..torn.len() / 2]);
            std::fs::write(&path, &text).unwrap();
        }
        let mut spool = Spool::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        // A new process appends to a new segment, after the old one.
        spool.append(&[encode(&record(7))]).unwrap();
        let (ids, corrupt, torn) = read_all(&mut spool);
        assert_eq!(ids, vec![0, 2, 3, 7]);
        assert_eq!((corrupt, torn), (1, true));
    }

    #[test]
    fn lines_decode_only_with_their_checksum() {
        let line = encode(&record(5));
        let body = &line[..line.len() - 1];
        assert!(matches!(decode(body), Line::Record(r) if r.duration_us == 5));
        assert_eq!(decode(b"deadbeef {}"), Line::Corrupt);
        assert_eq!(decode(b"short"), Line::Corrupt);
    }
}
