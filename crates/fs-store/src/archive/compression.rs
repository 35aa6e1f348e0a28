//! Whole-stream compression of an archive: chosen by extension or flag when writing, found by
//! its magic bytes when reading. Blobs inside are never recompressed, so digests are kept.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use ferry_core::{Error, Result};

/// How the whole tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// A plain tar: a file is read by offset, the only form `crane push` and skopeo's
    /// `docker-archive:` read.
    #[default]
    None,
    /// gzip (`.tar.gz`, `.tgz`): what `docker load`, regctl and skopeo's `oci-archive:`
    /// decompress themselves.
    Gzip,
    /// zstd (`.tar.zst`, `.tzst`).
    Zstd,
}

/// gzip's magic bytes (and deflate, the only method in use).
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// A zstd frame's magic number, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Magic bytes of formats ferry does not decompress, for a clear refusal.
const OTHER_MAGIC: [(&[u8], &str); 2] = [
    (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz"),
    (&[0x42, 0x5a, 0x68], "bzip2"),
];
/// The gzip level written: 6, gzip's own default.
const GZIP_LEVEL: u32 = 6;
/// The zstd level written: 3, zstd's own default (several hundred MB/s a core).
const ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The compression a file name asks for: `.gz`/`.tgz` gzip, `.zst`/`.tzst` zstd, anything
    /// else none.
    pub fn from_extension(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".tzst") || name.ends_with(".zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression of a stream that starts with `head` (at least 6 bytes when the stream
    /// has them). xz and bzip2 are refused, naming them.
    pub fn detect(head: &[u8], what: &str) -> Result<Self> {
        if head.starts_with(&GZIP_MAGIC) {
            return Ok(Compression::Gzip);
        }
        if head.starts_with(&ZSTD_MAGIC) {
            return Ok(Compression::Zstd);
        }
        for (magic, name) in OTHER_MAGIC {
            if head.starts_with(magic) {
                return Err(Error::invalid(
                    "archive",
                    what,
                    format!(
                        "it is {name}-compressed, which ferry does not read; decompress it, or \
                         write it with gzip or zstd"
                    ),
                ));
            }
        }
        Ok(Compression::None)
    }

    /// The name of the compression as the flag takes it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// `reader`, decompressed. gzip members and zstd frames that follow each other are read as
    /// one stream (ferry writes one per archive entry).
    pub(crate) fn decoder<'a, R: BufRead + Send + 'a>(
        self,
        reader: R,
    ) -> std::io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        })
    }

    /// A writer that compresses into `out` as one gzip member or zstd frame, ended by
    /// [`Member::finish`].
    pub(crate) fn member<W: Write>(self, out: W) -> std::io::Result<Member<W>> {
        Ok(match self {
            Compression::None => Member::Plain(out),
            Compression::Gzip => Member::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Compression::Zstd => Member::Zstd(zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?),
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            other => Err(Error::invalid(
                "archive compression",
                other,
                "write `gzip`, `zstd` or `none`",
            )),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One compressed member of the output: an archive entry is written as one, so that a failed
/// entry is undone by cutting the file where it began.
pub(crate) enum Member<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Member<W> {
    /// Ends the member (its trailer written) and returns the writer.
    pub(crate) fn finish(self) -> std::io::Result<W> {
        match self {
            Member::Plain(w) => Ok(w),
            Member::Gzip(e) => e.finish(),
            Member::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Member<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Member::Plain(w) => w.write(buf),
            Member::Gzip(e) => e.write(buf),
            Member::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Member::Plain(w) => w.write_all(buf),
            Member::Gzip(e) => e.write_all(buf),
            Member::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Member::Plain(w) => w.flush(),
            Member::Gzip(e) => e.flush(),
            Member::Zstd(e) => e.flush(),
        }
    }
}
