//! SHA-256 of several files at once: files hashed in lockstep, several per core.
//!
//! One SHA-256 is a chain of dependent rounds, so a single stream leaves the CPU's SHA unit
//! waiting on its own results most of the time. Independent streams interleaved on one core
//! fill those gaps: with the SHA extensions, four files hashed in lockstep on one core take
//! about half the time of hashing them one after another. Verifying a layout's blob files
//! before linking them is exactly that work (many files at once, each read straight from the
//! page cache), so [`sha256_file`] hands each file to a small set of workers that keep up to
//! [`LANES`] files each in flight and feed them window by window.
//!
//! The `sha2` crate hashes one stream at a time, and the multi-buffer crates hash whole
//! messages of equal length; the lane kernel here is the `sha2` crate's SHA-NI round function
//! applied to several states at once, checked against `sha2` for every lane count and for
//! lengths around every block and window boundary in the tests, with several files of mixed
//! sizes in flight at once.
//!
//! Digests of other algorithms go through [`hash_file`], one stream on the caller's thread,
//! read the same way and with the same checks.
//!
//! Callers queue their file and wait for its answer. Workers (threads, up to one per core) take
//! files from the queue into free lanes, and end once the queue and their lanes are empty: no
//! thread lives beyond the work, and no caller waits for anything but its own file and the
//! queue before it. A file queued while a running worker has a free lane joins that worker
//! rather than starting another ([`start_worker`]): files that arrive one by one, as the blobs
//! of a download are written, then share a core's SHA unit instead of each running alone on
//! its own core at half the rate.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// Files hashed in lockstep by one worker.
pub(crate) const LANES: usize = 4;

/// Bytes hashed per lane between two looks at the queue, so a file handed in while others
/// are being hashed joins them soon.
const STEP: usize = 64 << 10;

/// Bytes of a file mapped at a time: small enough to keep resident memory low with many files
/// in flight, large enough that mapping costs nothing.
const WINDOW: u64 = 2 << 20;

/// Files below this are read rather than mapped.
const MAP_AT_LEAST: u64 = 1 << 20;

/// Bytes read at a time from a file that is not mapped.
const READ_AT_ONCE: usize = 128 << 10;

const BLOCK: usize = 64;

/// Why a file could not be hashed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The caller's cancel flag was set.
    Cancelled,
    /// The file has not `len` bytes any more: it was changed while it was hashed.
    Changed,
    /// Reading or mapping the file failed, or no worker could hash it.
    Io(std::io::Error),
}

/// The SHA-256 of the first `len` bytes of `file`, which must have exactly `len` bytes.
///
/// Blocks until a worker has hashed the file; stops early with [`Failure::Cancelled`] once
/// `cancel` is set. The file's length is checked again after its last byte is read, so a file
/// that was cut short (whose mapped tail would read as zeros) or that grew is
/// [`Failure::Changed`].
pub(crate) fn sha256_file(
    file: File,
    len: u64,
    cancel: Arc<AtomicBool>,
) -> Result<[u8; 32], Failure> {
    let (reply, answer) = mpsc::channel();
    let job = Job {
        reader: Reader::new(file, len, cancel),
        reply,
    };
    let pool = pool();
    let start = {
        let mut shared = pool.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.queue.push_back(job);
        let start = start_worker(
            shared.workers,
            pool.max_workers,
            shared.queue.len() + shared.hashing,
        );
        if start {
            shared.workers += 1;
        }
        start
    };
    if start {
        let spawned = std::thread::Builder::new()
            .name("ferry-hash".into())
            .spawn(move || pool.work());
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "cannot start a hash thread; hashing on this one");
            pool.work();
        }
    }
    // A job is only queued while a worker is there to take it (a worker leaves only when the
    // queue is empty), so an answer comes, unless the worker holding the job panicked.
    answer.recv().unwrap_or_else(|_| {
        Err(Failure::Io(std::io::Error::other(
            "the hash worker stopped without an answer",
        )))
    })
}

/// Feeds the whole of `file`, which must have exactly `len` bytes, to `update`, one stream:
/// for the digests the lanes do not hash. Read as the lanes read, with the same checks: stops
/// with [`Failure::Cancelled`] once `cancel` is set, [`Failure::Changed`] when the file's length
/// is not `len` once its last byte is read.
pub(crate) fn hash_file(
    file: File,
    len: u64,
    cancel: Arc<AtomicBool>,
    mut update: impl FnMut(&[u8]),
) -> Result<(), Failure> {
    let mut reader = Reader::new(file, len, cancel);
    loop {
        let more = reader.fill()?;
        let n = reader.available().len();
        update(reader.available());
        reader.pos += n;
        if !more {
            return reader.check_length();
        }
    }
}

/// One file to hash and where its answer goes.
struct Job {
    reader: Reader,
    reply: mpsc::Sender<Result<[u8; 32], Failure>>,
}

struct Pool {
    shared: Mutex<Shared>,
    max_workers: usize,
}

struct Shared {
    queue: VecDeque<Job>,
    workers: usize,
    /// Files in the workers' lanes.
    hashing: usize,
}

/// Whether a file just queued needs a new worker: when none runs, or when the files queued
/// and being hashed (`load`, this one included) fill every running worker's lanes and another
/// core is free. A single file hashes at about half the rate of several in lockstep, so a free
/// lane beats a free core.
fn start_worker(workers: usize, max_workers: usize, load: usize) -> bool {
    workers == 0 || (workers < max_workers && load > workers * LANES)
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        shared: Mutex::new(Shared {
            queue: VecDeque::new(),
            workers: 0,
            hashing: 0,
        }),
        max_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

impl Pool {
    /// Hashes queued files until none is left, taking at most one new file per step so that
    /// other workers get their share of a burst.
    fn work(&self) {
        let _unwinding = Unwinding(self);
        let mut lanes: Vec<Lane> = Vec::with_capacity(LANES);
        let mut finished = 0;
        loop {
            {
                let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
                shared.hashing -= finished;
                if lanes.len() < LANES
                    && let Some(job) = shared.queue.pop_front()
                {
                    lanes.push(Lane::new(job));
                    shared.hashing += 1;
                }
                if lanes.is_empty() {
                    shared.workers -= 1;
                    return;
                }
            }
            finished = step(&mut lanes);
        }
    }
}

/// Should a worker panic, leaves the pool as if it had finished: the jobs in its lanes get no
/// answer (their callers see an error), and when it was the last worker the queued jobs are
/// failed too rather than left waiting for a worker that will not come.
struct Unwinding<'a>(&'a Pool);

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut shared = self.0.shared.lock().unwrap_or_else(|e| e.into_inner());
            shared.workers -= 1;
            if shared.workers == 0 {
                shared.queue.clear();
                shared.hashing = 0;
            }
        }
    }
}

/// One file being hashed in a lane.
struct Lane {
    reader: Reader,
    state: [u32; 8],
    reply: mpsc::Sender<Result<[u8; 32], Failure>>,
}

/// A file read window by window: mapped when large, else read into a buffer.
struct Reader {
    file: File,
    len: u64,
    cancel: Arc<AtomicBool>,
    /// File offset of the window's first byte.
    offset: u64,
    window: Window,
    /// Bytes of the window already hashed.
    pos: usize,
    /// Whether mapping is still worth trying.
    map: bool,
}

enum Window {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Window {
    fn bytes(&self) -> &[u8] {
        match self {
            Window::Mapped(m) => m,
            Window::Read(b) => b,
        }
    }
}

impl Reader {
    fn new(file: File, len: u64, cancel: Arc<AtomicBool>) -> Self {
        Reader {
            file,
            len,
            cancel,
            offset: 0,
            window: Window::Read(Vec::new()),
            pos: 0,
            map: len >= MAP_AT_LEAST,
        }
    }

    fn available(&self) -> &[u8] {
        &self.window.bytes()[self.pos..]
    }

    /// Makes at least one whole block available; `Ok(false)` at the end of the file, with
    /// only the last partial block (if any) left.
    fn fill(&mut self) -> Result<bool, Failure> {
        loop {
            if self.available().len() >= BLOCK {
                return Ok(true);
            }
            let end = self.offset + self.window.bytes().len() as u64;
            if end >= self.len {
                return Ok(false);
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Failure::Cancelled);
            }
            // Windows are whole blocks, except the file's last one.
            assert!(self.available().is_empty(), "a window ends inside a block");
            self.offset = end;
            self.pos = 0;
            self.window = self.load()?;
        }
    }

    fn load(&mut self) -> Result<Window, Failure> {
        let n = WINDOW.min(self.len - self.offset);
        if self.map {
            match map_window(&self.file, self.offset, n) {
                Ok(m) => return Ok(Window::Mapped(m)),
                Err(e) if self.offset == 0 => {
                    tracing::debug!(error = %e, "cannot map a file to hash it; reading it");
                    self.map = false;
                }
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        let n = (READ_AT_ONCE as u64).min(self.len - self.offset) as usize;
        let mut buf = match std::mem::replace(&mut self.window, Window::Read(Vec::new())) {
            Window::Read(b) => b,
            Window::Mapped(_) => Vec::new(),
        };
        buf.resize(n, 0);
        let mut filled = 0;
        while filled < n {
            match self
                .file
                .read_at(&mut buf[filled..], self.offset + filled as u64)
            {
                Ok(0) => return Err(Failure::Changed),
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e)),
            }
        }
        Ok(Window::Read(buf))
    }

    /// Checks, once the last byte is read, that the file still has the length it was hashed
    /// with: a map of a file cut short reads zeros past its end.
    fn check_length(&self) -> Result<(), Failure> {
        let now = self.file.metadata().map_err(Failure::Io)?.len();
        if now == self.len {
            Ok(())
        } else {
            Err(Failure::Changed)
        }
    }
}

impl Lane {
    fn new(job: Job) -> Self {
        Lane {
            reader: job.reader,
            state: H0,
            reply: job.reply,
        }
    }

    /// Hashes the last partial block and the padding; the file must end here.
    fn finish(&mut self) -> Result<[u8; 32], Failure> {
        self.reader.check_length()?;
        let tail = self.reader.available();
        let mut last = [0u8; 2 * BLOCK];
        last[..tail.len()].copy_from_slice(tail);
        last[tail.len()] = 0x80;
        let n = if tail.len() < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        last[n - 8..n].copy_from_slice(&(self.reader.len * 8).to_be_bytes());
        compress(&mut [&mut self.state], &[&last[..n]]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Ok(out)
    }
}

/// Hashes up to [`STEP`] bytes of every lane in lockstep; answers and drops finished lanes,
/// and says how many it dropped.
fn step(lanes: &mut Vec<Lane>) -> usize {
    let before = lanes.len();
    let mut i = 0;
    while i < lanes.len() {
        let done = match lanes[i].reader.fill() {
            Ok(true) => None,
            Ok(false) => Some(lanes[i].finish()),
            Err(f) => Some(Err(f)),
        };
        match done {
            Some(answer) => {
                let lane = lanes.swap_remove(i);
                // The caller may have gone (a dropped mount); nobody else wants the answer.
                let _ = lane.reply.send(answer);
            }
            None => i += 1,
        }
    }
    let finished = before - lanes.len();
    if lanes.is_empty() {
        return finished;
    }
    let n = lanes
        .iter()
        .map(|l| l.reader.available().len())
        .min()
        .unwrap_or(0)
        .min(STEP)
        / BLOCK
        * BLOCK;
    let mut states: Vec<&mut [u32; 8]> = Vec::with_capacity(lanes.len());
    let mut data: Vec<&[u8]> = Vec::with_capacity(lanes.len());
    for lane in lanes.iter_mut() {
        let Lane { state, reader, .. } = lane;
        states.push(state);
        data.push(&reader.available()[..n]);
    }
    compress(&mut states, &data);
    for lane in lanes.iter_mut() {
        lane.reader.pos += n;
    }
    finished
}

/// Compresses the whole blocks of `data[i]` into `states[i]`, every lane the same length.
#[allow(unsafe_code)]
fn compress(states: &mut [&mut [u32; 8]], data: &[&[u8]]) {
    assert_eq!(states.len(), data.len(), "a state for every lane");
    assert!(
        data.iter()
            .all(|d| d.len() == data[0].len() && d.len() % BLOCK == 0),
        "lanes of the same whole number of blocks"
    );
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        for (s, d) in states.chunks_mut(LANES).zip(data.chunks(LANES)) {
            // SAFETY: the CPU has the extensions the kernel is compiled for (checked above),
            // and every lane has the same number of whole blocks (asserted above).
            unsafe {
                match s.len() {
                    4 => x86::compress::<4>(s, d),
                    3 => x86::compress::<3>(s, d),
                    2 => x86::compress::<2>(s, d),
                    _ => x86::compress::<1>(s, d),
                }
            }
        }
        return;
    }
    portable(states, data);
}

/// [`compress`] one lane after another, on the `sha2` crate: for CPUs without the SHA
/// extensions.
fn portable(states: &mut [&mut [u32; 8]], data: &[&[u8]]) {
    for (s, d) in states.iter_mut().zip(data) {
        for block in d.chunks_exact(BLOCK) {
            sha2::compress256(
                s,
                &[*sha2::digest::generic_array::GenericArray::from_slice(
                    block,
                )],
            );
        }
    }
}

/// Maps `len` bytes of `file` from `offset`, read-only.
#[allow(unsafe_code)]
fn map_window(file: &File, offset: u64, len: u64) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this call; the only hazard is another
    // process truncating the file while it is mapped (a SIGBUS). Files hashed here are
    // committed blobs of OCI layouts, which are content-addressed and never rewritten in
    // place: stores (ferry's, skopeo's, umoci's) replace them by rename and remove them by
    // unlink, neither of which changes a mapped inode.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len as usize)
            .map(file)
    }
}

/// SHA-256's initial state.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The lane kernel on the x86 SHA extensions.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    /// SHA-256's round constants.
    static K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Whether this CPU has the SHA extensions and the SSE levels the kernel uses.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }

    /// Compresses the blocks of `data[l]` into `states[l]` for `N` lanes at once, their
    /// rounds interleaved so that one lane's instructions run while another's wait.
    ///
    /// # Safety
    ///
    /// The CPU must have the `sha`, `ssse3` and `sse4.1` extensions; `states` and `data` must
    /// have `N` entries, every slice of `data` the same whole number of blocks.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress<const N: usize>(states: &mut [&mut [u32; 8]], data: &[&[u8]]) {
        let blocks = data[0].len() / super::BLOCK;
        let mask = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        let zero = _mm_setzero_si128();
        let mut abef = [zero; N];
        let mut cdgh = [zero; N];
        for l in 0..N {
            // SAFETY: a state is 8 words, read as two unaligned vectors.
            let (dcba, efgh) = unsafe {
                let p = states[l].as_ptr().cast::<__m128i>();
                (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)))
            };
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(efgh, 0x1B);
            abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
            cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xF0);
        }
        let mut m = [[zero; 4]; N];
        for b in 0..blocks {
            let (abef_save, cdgh_save) = (abef, cdgh);
            for l in 0..N {
                for (j, w) in m[l].iter_mut().enumerate() {
                    // SAFETY: block `b` of lane `l` is in bounds (every lane has `blocks`
                    // whole blocks); unaligned loads.
                    *w = _mm_shuffle_epi8(
                        unsafe {
                            _mm_loadu_si128(
                                data[l]
                                    .as_ptr()
                                    .add(b * super::BLOCK + 16 * j)
                                    .cast::<__m128i>(),
                            )
                        },
                        mask,
                    );
                }
            }
            // Four rounds of every lane per group. Group `i` uses message words `m[i % 4]`;
            // groups 3..=14 finish the words of group `i + 1` (msg2) and groups 1..=12 start
            // those of group `i + 3` (msg1), in place, as in the SHA extensions' reference.
            macro_rules! groups {
                ($($i:literal)*) => {$(
                    for l in 0..N {
                        // SAFETY: four constants from index 4 * i < 64, unaligned.
                        let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * $i).cast::<__m128i>()) };
                        let wk = _mm_add_epi32(m[l][$i & 3], k);
                        cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
                        if (3..=14).contains(&$i) {
                            let t = _mm_alignr_epi8(m[l][$i & 3], m[l][($i + 3) & 3], 4);
                            let next = _mm_add_epi32(m[l][($i + 1) & 3], t);
                            m[l][($i + 1) & 3] = _mm_sha256msg2_epu32(next, m[l][$i & 3]);
                        }
                        abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk, 0x0E));
                        if (1..=12).contains(&$i) {
                            m[l][($i + 3) & 3] = _mm_sha256msg1_epu32(m[l][($i + 3) & 3], m[l][$i & 3]);
                        }
                    }
                )*};
            }
            groups!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            for l in 0..N {
                abef[l] = _mm_add_epi32(abef[l], abef_save[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], cdgh_save[l]);
            }
        }
        for l in 0..N {
            let feba = _mm_shuffle_epi32(abef[l], 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
            let hgef = _mm_alignr_epi8(dchg, feba, 8);
            // SAFETY: a state is 8 words, written as two unaligned vectors.
            unsafe {
                let p = states[l].as_mut_ptr().cast::<__m128i>();
                _mm_storeu_si128(p, dcba);
                _mm_storeu_si128(p.add(1), hgef);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;
    use std::io::Write;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] ^ seed)
            .collect()
    }

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn every_lane_count_matches_sha2() {
        for lanes in 1..=6 {
            let inputs: Vec<Vec<u8>> = (0..lanes).map(|l| data(37 * BLOCK, l as u8)).collect();
            let mut states = vec![H0; lanes];
            let mut refs: Vec<&mut [u32; 8]> = states.iter_mut().collect();
            let slices: Vec<&[u8]> = inputs.iter().map(|d| &d[..]).collect();
            compress(&mut refs, &slices);
            let mut portable_states = vec![H0; lanes];
            let mut refs: Vec<&mut [u32; 8]> = portable_states.iter_mut().collect();
            portable(&mut refs, &slices);
            assert_eq!(states, portable_states, "{lanes} lanes");
            for (state, input) in states.iter().zip(&inputs) {
                let mut expected = H0;
                for block in input.chunks_exact(BLOCK) {
                    sha2::compress256(
                        &mut expected,
                        &[*sha2::digest::generic_array::GenericArray::from_slice(
                            block,
                        )],
                    );
                }
                assert_eq!(state, &expected, "{lanes} lanes");
            }
        }
    }

    #[test]
    fn files_of_every_awkward_length_hash_as_sha2_does_while_hashed_together() {
        let w = WINDOW as usize;
        let r = READ_AT_ONCE;
        let m = MAP_AT_LEAST as usize;
        let lens = [
            0,
            1,
            55,
            56,
            63,
            64,
            65,
            119,
            120,
            128,
            r - 1,
            r,
            r + 1,
            3 * r + 17,
            m - 1,
            m,
            m + 55,
            w - 64,
            w,
            w + 1,
            2 * w + 63,
            5 * w + 100,
        ];
        let inputs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| data(n, i as u8))
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = inputs
                .iter()
                .map(|input| {
                    s.spawn(move || {
                        let cancel = Arc::new(AtomicBool::new(false));
                        sha256_file(file(input), input.len() as u64, cancel).unwrap()
                    })
                })
                .collect();
            for (h, input) in handles.into_iter().zip(&inputs) {
                let expected: [u8; 32] = sha2::Sha256::digest(input).into();
                assert_eq!(h.join().unwrap(), expected, "{} bytes", input.len());
            }
        });
    }

    #[test]
    fn a_file_longer_or_shorter_than_its_length_is_changed() {
        let bytes = data(3 * BLOCK + 5, 9);
        let cancel = || Arc::new(AtomicBool::new(false));
        for len in [3 * BLOCK as u64, 3 * BLOCK as u64 + 4, 3 * BLOCK as u64 + 6] {
            let got = sha256_file(file(&bytes), len, cancel());
            assert!(matches!(got, Err(Failure::Changed)), "{len}: {got:?}");
        }
        let big = data(MAP_AT_LEAST as usize + 10, 3);
        let got = sha256_file(file(&big), MAP_AT_LEAST + 9, cancel());
        assert!(matches!(got, Err(Failure::Changed)), "{got:?}");
        // A mapped file cut short inside its last page reads zeros where its end was: a blob
        // that ends in zeros, as tar layers do, would hash to its digest but for the length.
        let mut zero_tail = data(MAP_AT_LEAST as usize + 3000, 5);
        let n = zero_tail.len();
        zero_tail[n - 1024..].fill(0);
        let got = sha256_file(file(&zero_tail[..n - 1000]), n as u64, cancel());
        assert!(matches!(got, Err(Failure::Changed)), "{got:?}");
    }

    #[test]
    fn one_stream_hashing_reads_as_the_lanes_do() {
        for len in [
            0,
            63,
            READ_AT_ONCE + 1,
            MAP_AT_LEAST as usize + 7,
            2 * WINDOW as usize + 1,
        ] {
            let bytes = data(len, 7);
            let mut hasher = sha2::Sha512::new();
            let cancel = Arc::new(AtomicBool::new(false));
            hash_file(file(&bytes), len as u64, cancel, |b| hasher.update(b)).unwrap();
            assert_eq!(
                hasher.finalize(),
                sha2::Sha512::digest(&bytes),
                "{len} bytes"
            );
        }
        let bytes = data(MAP_AT_LEAST as usize + 3000, 2);
        let cancel = Arc::new(AtomicBool::new(false));
        let got = hash_file(
            file(&bytes[..bytes.len() - 1000]),
            bytes.len() as u64,
            cancel,
            |_| {},
        );
        assert!(matches!(got, Err(Failure::Changed)), "{got:?}");
    }

    #[test]
    fn a_file_joins_a_running_worker_with_a_free_lane_before_another_starts() {
        // None runs: the first file starts one.
        assert!(start_worker(0, 2, 1));
        // One runs with free lanes: the next files join it, even with a core free.
        for load in 2..=LANES {
            assert!(!start_worker(1, 2, load), "load {load}");
        }
        // Its lanes are full: the next file starts a worker on the free core.
        assert!(start_worker(1, 2, LANES + 1));
        // Every core has a worker: files wait for a lane.
        assert!(!start_worker(2, 2, 3 * LANES));
        // One core: one worker, whatever the load.
        assert!(!start_worker(1, 1, 10 * LANES));
    }

    #[test]
    fn a_cancelled_hash_stops() {
        let bytes = data(READ_AT_ONCE * 2, 1);
        let cancel = Arc::new(AtomicBool::new(true));
        let got = sha256_file(file(&bytes), bytes.len() as u64, cancel);
        assert!(matches!(got, Err(Failure::Cancelled)), "{got:?}");
    }
}
