//! The tar stream an [`super::ArchiveWriter`] writes: one entry at a time, each its own gzip
//! member or zstd frame when compressed, so that an entry that fails part-way is undone by
//! cutting the file where it began.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_core::{Error, Result};
use tokio::sync::mpsc;

use super::compression::Compression;

/// Writes go to the file in chunks this large.
const BUFFER: usize = 256 * 1024;

/// Where the archive goes.
pub(crate) enum Out {
    /// A temporary file beside the final name, renamed to it at the end.
    File {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
    },
    /// Standard output: what is written cannot be taken back.
    Stdout,
}

/// The archive being written.
pub(crate) struct Sink {
    writer: Counting<BufWriter<File>>,
    out: Out,
    compression: Compression,
}

/// Counts the bytes written through it: the offset where the next entry begins.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why an entry was not written, and whether the archive can go on.
pub(crate) struct EntryFailure {
    pub error: Error,
    /// The entry could not be undone: the archive is broken off.
    pub broken: bool,
}

impl Sink {
    /// A temporary file in the directory of `target`, renamed to `target` by
    /// [`Sink::finish`].
    pub(crate) fn file(target: &Path, compression: Compression) -> Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::NotFound {
                what: format!("directory `{}`", dir.display()),
                hint: Some(
                    "create it first; ferry writes the archive beside its final name".into(),
                ),
            });
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "archive".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("creating a file in `{}`", dir.display()), e))?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("opening the archive", e))?;
        Ok(Self {
            writer: Counting {
                inner: BufWriter::with_capacity(BUFFER, file),
                count: 0,
            },
            out: Out::File {
                tmp,
                target: target.to_path_buf(),
            },
            compression,
        })
    }

    /// Standard output.
    pub(crate) fn stdout(compression: Compression) -> Result<Self> {
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("opening standard output", e))?;
        Ok(Self {
            writer: Counting {
                inner: BufWriter::with_capacity(BUFFER, File::from(fd)),
                count: 0,
            },
            out: Out::Stdout,
            compression,
        })
    }

    /// Writes one entry: `head` (its headers), then `size` bytes received from `data`, then
    /// the padding to a 512-byte block. Data that ends short (a failed or unverified source)
    /// undoes the entry.
    pub(crate) fn entry(
        &mut self,
        head: &[u8],
        size: u64,
        mut data: mpsc::Receiver<Bytes>,
    ) -> std::result::Result<(), EntryFailure> {
        // What came before is on disk, so undoing this entry drops none of it.
        if let Err(e) = self.writer.flush() {
            return Err(EntryFailure {
                error: Error::io("writing the archive", e),
                broken: true,
            });
        }
        let mark = self.writer.count;
        let result = (|| -> Result<()> {
            let io = |e| Error::io("writing the archive", e);
            let mut member = self.compression.member(&mut self.writer).map_err(io)?;
            member.write_all(head).map_err(io)?;
            let mut received = 0u64;
            while let Some(chunk) = data.blocking_recv() {
                received += chunk.len() as u64;
                if received > size {
                    return Err(Error::Cancelled("more bytes than the entry holds".into()));
                }
                member.write_all(&chunk).map_err(io)?;
            }
            if received < size {
                return Err(Error::Cancelled(format!(
                    "the entry got {received} of {size} bytes"
                )));
            }
            member.write_all(&padding(size)).map_err(io)?;
            member.finish().map_err(io)?;
            Ok(())
        })();
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                let broken = self.undo(mark).is_err();
                Err(EntryFailure { error, broken })
            }
        }
    }

    /// Writes an entry whose bytes are all at hand.
    pub(crate) fn bytes_entry(&mut self, head: &[u8], body: &[u8]) -> Result<()> {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Bytes::copy_from_slice(body));
        drop(tx);
        self.entry(head, body.len() as u64, rx).map_err(|f| f.error)
    }

    /// Cuts the archive back to `mark`, where the failed entry began.
    fn undo(&mut self, mark: u64) -> std::io::Result<()> {
        let Out::File { .. } = self.out else {
            return Err(std::io::Error::other(
                "standard output cannot be taken back",
            ));
        };
        // What is buffered belongs to the failed entry; it is dropped with the buffer.
        let placeholder = Counting {
            inner: BufWriter::with_capacity(0, self.writer.inner.get_ref().try_clone()?),
            count: 0,
        };
        let old = std::mem::replace(&mut self.writer, placeholder);
        let (mut file, _dropped) = old.inner.into_parts();
        file.set_len(mark)?;
        file.seek(SeekFrom::Start(mark))?;
        self.writer = Counting {
            inner: BufWriter::with_capacity(BUFFER, file),
            count: mark,
        };
        Ok(())
    }

    /// Writes the end-of-archive marker, makes the file durable and renames it to its final
    /// name (or flushes standard output). Returns the archive's size.
    pub(crate) fn finish(mut self) -> Result<u64> {
        let io = |e| Error::io("finishing the archive", e);
        let mut member = self.compression.member(&mut self.writer).map_err(io)?;
        member.write_all(&[0u8; 1024]).map_err(io)?;
        member.finish().map_err(io)?;
        self.writer.flush().map_err(io)?;
        let size = self.writer.count;
        match self.out {
            Out::Stdout => {}
            Out::File { tmp, target } => {
                tmp.as_file().sync_all().map_err(io)?;
                tmp.persist(&target).map_err(|e| {
                    Error::io(
                        format!("renaming the archive to `{}`", target.display()),
                        e.error,
                    )
                })?;
                if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::layout::sync_dir(dir).map_err(io)?;
                }
            }
        }
        Ok(size)
    }
}

/// Zeros that pad an entry of `size` bytes to a whole 512-byte block.
fn padding(size: u64) -> Vec<u8> {
    vec![0u8; ((512 - size % 512) % 512) as usize]
}

/// The headers of a regular file entry `name` of `size` bytes: a PAX header first when
/// `records` are given or the name is longer than a ustar header holds, then the ustar
/// header (mode 0644, owner 0:0, time 0).
pub(crate) fn headers(name: &str, size: u64, records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1536);
    let mut pax: Vec<(&str, &str)> = records.to_vec();
    if name.len() > 100 {
        pax.push(("path", name));
    }
    if !pax.is_empty() {
        let body = pax_body(&pax);
        let short: String = name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .chars()
            .take(80)
            .collect();
        out.extend_from_slice(
            ustar(
                &format!("PaxHeaders/{short}"),
                body.len() as u64,
                tar::EntryType::XHeader,
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(&padding(body.len() as u64));
    }
    out.extend_from_slice(ustar(name, size, tar::EntryType::Regular).as_bytes());
    out
}

fn ustar(name: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    let bytes = name.as_bytes();
    let ustar = header.as_ustar_mut().expect("a ustar header");
    let n = bytes.len().min(ustar.name.len());
    ustar.name[..n].copy_from_slice(&bytes[..n]);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(kind);
    header.set_cksum();
    header
}

/// PAX records: each `LEN KEY=VALUE\n`, where `LEN` counts the whole record, itself included.
fn pax_body(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = format!(" {key}={value}\n");
        let mut len = rest.len();
        while (len.to_string().len() + rest.len()) != len {
            len = len.to_string().len() + rest.len();
        }
        out.extend_from_slice(format!("{len}{rest}").as_bytes());
    }
    out
}
