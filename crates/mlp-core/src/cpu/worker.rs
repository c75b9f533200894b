//! Persistent worker threads that take all but the first part of each of a step's phases, and
//! wait for the next by spinning rather than sleeping.
//!
//! A step of the seed network is about 135 µs on one core, and the fast backend splits each
//! of its two phases between its threads. A thread pool that puts its idle threads to sleep
//! (rayon's does, after a few rounds) must wake them for each phase, and waking a sleeping
//! thread under a hypervisor costs tens of µs: on the 2-core KVM machine of issue 27 the
//! two-thread step was slower than one thread. These workers spin between the phases of a run
//! of steps (for up to [`SPIN`], then yield the core for up to [`YIELD`]) and sleep only once
//! nothing has come for that long, between epochs. The split of the work is the caller's: the
//! numbers are the same whether the parts run on many threads or one after the other on the
//! caller's.
//!
//! On a busy machine (more runnable threads than cores) a spinning partner does harm: the part
//! it is given waits for the scheduler, and the caller spins for it. Two seed runs at once on
//! the 2 cores, two threads each, took 0.10-0.56 s an epoch against 0.080 on one thread each.
//! So the pool notes how long its parts waited before they started ([`Contention`]); where
//! many of a few phases in a row waited, the caller runs every part itself for a while, probing
//! again later, and backing off for longer each time the machine is still busy.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a worker spins for its next part before it yields the core: longer than the gap
/// between two phases of a step, however small the network.
const SPIN: Duration = Duration::from_micros(200);
/// How long it then offers the core to other threads before it sleeps.
const YIELD: Duration = Duration::from_millis(5);

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const DONE: u8 = 2;

/// A part posted to a worker: a closure of the caller's stack frame, which
/// [`Workers::for_each`] does not leave before the worker has run it.
struct Posted(*mut (dyn FnMut() + Send));

// SAFETY: the closure is Send, and the caller's frame outlives its run (see `for_each`).
#[allow(unsafe_code)]
unsafe impl Send for Posted {}

/// What the caller and one worker thread share.
struct Shared {
    state: AtomicU8,
    /// When the worker took the posted part.
    started: Mutex<Option<Instant>>,
    part: Mutex<Option<Posted>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    asleep: AtomicBool,
    quit: AtomicBool,
}

struct WorkerThread {
    shared: Arc<Shared>,
    handle: JoinHandle<()>,
}

impl WorkerThread {
    /// A thread of its own, or `None` where the system refuses one.
    fn spawn() -> Option<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            started: Mutex::new(None),
            part: Mutex::new(None),
            panic: Mutex::new(None),
            asleep: AtomicBool::new(false),
            quit: AtomicBool::new(false),
        });
        let theirs = Arc::clone(&shared);
        let handle = (thread::Builder::new().name("mlp-cpu-worker".into()))
            .spawn(move || run(&theirs))
            .ok()?;
        Some(Self { shared, handle })
    }

    /// Hands `part` to the thread, waking it where it sleeps.
    fn post(&self, part: Posted) {
        *lock(&self.shared.part) = Some(part);
        self.shared.state.store(POSTED, SeqCst);
        if self.shared.asleep.load(SeqCst) {
            self.handle.thread().unpark();
        }
    }

    /// Waits until the posted part has run; returns when it started and its panic, if any.
    fn wait(&self) -> (Option<Instant>, Option<Box<dyn Any + Send>>) {
        wait_for(|| self.shared.state.load(SeqCst) == DONE);
        self.shared.state.store(IDLE, SeqCst);
        let started = lock(&self.shared.started).take();
        (started, lock(&self.shared.panic).take())
    }
}

/// The caller's partners for [`Workers::for_each`]; dropping it ends their threads.
pub struct Workers {
    threads: Vec<WorkerThread>,
    /// For each count of workers a phase posts to (from 1): whether they got their cores. A
    /// busy machine may leave one worker its core but not three.
    contention: Vec<Contention>,
    /// Whether the last `for_each` ran its parts at once, each on a thread of its own.
    ran_apart: bool,
}

impl Workers {
    /// `threads − 1` worker threads beside the caller's (fewer where the system refuses one);
    /// with 1, every part runs on the caller's thread.
    pub fn new(threads: usize) -> Self {
        let threads: Vec<_> = (1..threads).map_while(|_| WorkerThread::spawn()).collect();
        Self {
            contention: threads.iter().map(|_| Contention::default()).collect(),
            threads,
            ran_apart: false,
        }
    }

    /// The threads parts run on: the caller's and the workers'.
    pub fn threads(&self) -> usize {
        1 + self.threads.len()
    }

    /// Whether the last [`Workers::for_each`] ran its parts at once, each on a thread of its
    /// own, so that their times can be compared.
    pub fn ran_apart(&self) -> bool {
        self.ran_apart
    }

    /// Runs `run` on each of `parts` and returns once all have run: the first here, the next
    /// ones each on a worker, any beyond the workers here after the first. A panic in any part
    /// is resumed here after all have finished. Without workers, or while the machine is busy
    /// ([`Contention`]), every part runs here in turn. It takes the pool mutably so that one
    /// part at a time is ever posted to a worker.
    #[allow(unsafe_code)]
    pub fn for_each<T: Send>(&mut self, parts: &mut [T], run: impl Fn(&mut T) + Sync) {
        self.ran_apart = false;
        let posted_count = parts.len().saturating_sub(1).min(self.threads.len());
        if posted_count == 0 || self.contention[posted_count - 1].run_here() {
            parts.iter_mut().for_each(run);
            return;
        }
        let (first, others) = parts.split_first_mut().expect("two parts or more");
        let (posted, here) = others.split_at_mut(posted_count);
        self.ran_apart = here.is_empty();
        let run = &run;
        let mut closures: Vec<_> = posted.iter_mut().map(|part| move || run(part)).collect();
        let posted_at = Instant::now();
        for (closure, thread) in closures.iter_mut().zip(&self.threads) {
            let closure: &mut (dyn FnMut() + Send) = closure;
            // SAFETY: the pointer's lifetime is erased, but this function does not return or
            // unwind before every worker has set DONE after running its closure (the waits
            // below come before any resume), and `closures` is not moved meanwhile, so the
            // frame it borrows outlives every use.
            let closure: *mut (dyn FnMut() + Send + 'static) =
                unsafe { std::mem::transmute(closure) };
            thread.post(Posted(closure));
        }
        let mine = catch_unwind(AssertUnwindSafe(|| {
            run(first);
            here.iter_mut().for_each(run);
        }));
        let mut longest_wait = Duration::ZERO;
        let mut panic = mine.err();
        for thread in &self.threads[..posted_count] {
            let (started, theirs) = thread.wait();
            if let Some(started) = started {
                longest_wait = longest_wait.max(started.saturating_duration_since(posted_at));
            }
            panic = panic.or(theirs);
        }
        drop(closures);
        self.contention[posted_count - 1].note(longest_wait);
        if let Some(panic) = panic {
            resume_unwind(panic);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for thread in &self.threads {
            thread.shared.quit.store(true, SeqCst);
            thread.handle.thread().unpark();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.handle.join();
        }
    }
}

/// A worker's loop: wait for a part, run it, say it is done.
#[allow(unsafe_code)]
fn run(shared: &Shared) {
    loop {
        let mut since = Instant::now();
        while shared.state.load(SeqCst) != POSTED {
            if shared.quit.load(SeqCst) {
                return;
            }
            let waited = since.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < SPIN + YIELD {
                thread::yield_now();
            } else {
                shared.asleep.store(true, SeqCst);
                if shared.state.load(SeqCst) != POSTED && !shared.quit.load(SeqCst) {
                    thread::park();
                }
                shared.asleep.store(false, SeqCst);
                since = Instant::now();
            }
        }
        let Posted(part) = lock(&shared.part).take().expect("a posted part");
        *lock(&shared.started) = Some(Instant::now());
        // SAFETY: `for_each` keeps the closure alive until DONE is set below.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*part)() }));
        if let Err(panic) = outcome {
            *lock(&shared.panic) = Some(panic);
        }
        shared.state.store(DONE, SeqCst);
    }
}

/// Spins until `done`, then yields between looks: the caller's own part is usually the longer.
fn wait_for(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// The mutex's value, whether or not a panic poisoned it (the worker catches its panics).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A part that waited longer than this to start found its worker off its core: a spinning
/// worker starts one in well under a microsecond, one woken from sleep in tens.
const DELAYED: Duration = Duration::from_micros(100);
/// Phases a probe of the machine looks at, and how many of them may wait before it is busy.
const PROBE: u32 = 16;
const DELAYED_IN_PROBE: u32 = 4;
/// Phases run on one thread after a busy probe: at first, and at most after doubling.
const FIRST_BACKOFF: u32 = 1_000;
const LAST_BACKOFF: u32 = 64_000;

/// Whether the machine lets the workers run when they are given parts: from how long the
/// parts of the last few phases waited to start (the longest wait of each phase). A probe of
/// [`PROBE`] phases with more than [`DELAYED_IN_PROBE`] delayed ones sends the next `backoff`
/// phases to the caller's thread alone; each busy probe doubles the backoff, a quiet one
/// resets it.
#[derive(Debug)]
struct Contention {
    phases: u32,
    delayed: u32,
    /// Phases still to run on the caller's thread.
    here: u32,
    backoff: u32,
}

impl Default for Contention {
    fn default() -> Self {
        Self {
            phases: 0,
            delayed: 0,
            here: 0,
            backoff: FIRST_BACKOFF,
        }
    }
}

impl Contention {
    /// Whether the next phase runs every part on the caller's thread.
    fn run_here(&mut self) -> bool {
        if self.here == 0 {
            return false;
        }
        self.here -= 1;
        true
    }

    /// Notes a phase whose parts waited at most `wait` to start.
    fn note(&mut self, wait: Duration) {
        self.phases += 1;
        self.delayed += u32::from(wait > DELAYED);
        if self.delayed > DELAYED_IN_PROBE {
            self.here = self.backoff;
            self.backoff = (self.backoff * 2).min(LAST_BACKOFF);
        } else if self.phases < PROBE {
            return;
        } else {
            self.backoff = FIRST_BACKOFF;
        }
        self.phases = 0;
        self.delayed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each part's own number, squared in place by whichever thread runs it.
    fn square_each(workers: &mut Workers, values: &mut [u64]) {
        workers.for_each(values, |v| *v *= *v);
    }

    #[test]
    fn every_part_runs_once_whatever_the_threads_and_parts() {
        for threads in 1..=4 {
            let mut workers = Workers::new(threads);
            assert_eq!(workers.threads(), threads);
            for parts in 0..=6u64 {
                for step in 0..500u64 {
                    let mut values: Vec<u64> = (0..parts).map(|p| p + step).collect();
                    square_each(&mut workers, &mut values);
                    let squares: Vec<u64> = (0..parts).map(|p| (p + step).pow(2)).collect();
                    assert_eq!(values, squares, "{threads} threads, {parts} parts");
                }
            }
        }
    }

    #[test]
    fn the_parts_borrow_the_callers_data_mutably() {
        let mut workers = Workers::new(3);
        let mut values = vec![1u32; 999];
        let mut thirds: Vec<&mut [u32]> = values.chunks_mut(333).collect();
        workers.for_each(&mut thirds, |third| third.iter_mut().for_each(|v| *v += 2));
        assert!(values.iter().all(|&v| v == 3));
    }

    #[test]
    fn a_panic_in_any_part_reaches_the_caller_and_the_workers_go_on() {
        let mut workers = Workers::new(3);
        for panicking in 0..3 {
            let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut parts = [0, 1, 2];
                workers.for_each(&mut parts, |p| assert_ne!(*p, panicking, "part {p}"));
            }));
            assert!(caught.is_err(), "part {panicking}");
        }
        let mut values = [2, 3, 4];
        square_each(&mut workers, &mut values);
        assert_eq!(values, [4, 9, 16]);
    }

    #[test]
    fn a_worker_that_slept_wakes_for_the_next_part() {
        let mut workers = Workers::new(2);
        thread::sleep(SPIN + YIELD + Duration::from_millis(20));
        let mut values = [5, 6];
        square_each(&mut workers, &mut values);
        assert_eq!(values, [25, 36]);
    }

    #[test]
    fn a_busy_probe_sends_phases_to_the_caller_for_longer_each_time() {
        let mut contention = Contention::default();
        let (quick, slow) = (Duration::from_micros(1), Duration::from_millis(2));
        for _ in 0..10 * PROBE {
            contention.note(quick);
            assert!(!contention.run_here());
        }
        for backoff in [FIRST_BACKOFF, 2 * FIRST_BACKOFF] {
            for _ in 0..=DELAYED_IN_PROBE {
                assert!(!contention.run_here());
                contention.note(slow);
            }
            let here = std::iter::from_fn(|| Some(contention.run_here()))
                .take_while(|&here| here)
                .count();
            assert_eq!(here as u32, backoff);
        }
        for _ in 0..PROBE {
            contention.note(quick);
        }
        assert_eq!(contention.backoff, FIRST_BACKOFF);
    }

    #[test]
    fn phases_the_busy_machine_sends_to_the_caller_run_every_part() {
        let mut workers = Workers::new(2);
        workers.contention[0].here = 3;
        for step in 0..5 {
            let mut values = [step, step + 1];
            square_each(&mut workers, &mut values);
            assert_eq!(values, [step * step, (step + 1) * (step + 1)]);
            assert_eq!(workers.ran_apart(), step >= 3, "phase {step}");
        }
    }

    #[test]
    fn parts_beyond_the_workers_run_here_and_are_not_timed_apart() {
        let mut workers = Workers::new(2);
        let mut values = [1, 2, 3];
        square_each(&mut workers, &mut values);
        assert_eq!(values, [1, 4, 9]);
        assert!(!workers.ran_apart());
    }
}
