//! Where the CPU engines' batches come from. Before a step can touch the tables, its batch is
//! *prepared*: its ratings gathered from the training ratings, the rows it touches on each side
//! found and given slots, and for the exact path each such row's catch-up gap computed (the step a
//! row stands at follows from the order alone: the last step that touched it, or the last
//! synchronisation point). That work depends on the epoch's order and the schedule only, not on
//! the model, so for a large fit on one engine thread a helper thread prepares batches a chunk ahead
//! of the steps, as a data loader's worker does; otherwise each step prepares its own batch. The
//! prepared batches are the same either way, and so are the results.
use std::ops::RangeInclusive;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::catchup::{CatchUp, Gap, RowGap};
use super::pair::Pair;
use super::tables::both;
use crate::data::databunch::Encoded;
use crate::kernels::{prefetch, Level, AHEAD};

/// A batch's rating as (user row, item row, rating): the step reads each from one place.
pub(crate) type Packed = (u32, u32, f32);

/// One batch made ready for a step: its ratings and the rows it touches on each side.
#[derive(Default)]
pub(crate) struct Prepared {
    /// The batch's ratings, in batch order.
    pub batch: Vec<Packed>,
    /// Users (0) and items (1) the batch touches.
    pub touched: [Touched; 2],
    /// For the exact path, per side, each touched row's catch-up (in slot order); else empty.
    gaps: [Vec<RowGap>; 2],
    /// The batch's first rating number: checked against the step's batch.
    first: u32,
}

impl Prepared {
    /// The catch-ups of side `j`'s touched rows of one parity (empty when not computed).
    pub fn gaps(&self, j: usize, parity: usize) -> &[RowGap] {
        let g = &self.gaps[j];
        if g.is_empty() {
            &[]
        } else {
            &g[self.touched[j].slots(parity)]
        }
    }
}

/// The rows of one side that a batch touches: slot `k` holds the `k`-th such row (even rows
/// first), and its gradient is accumulated in row `k` of a compact buffer.
#[derive(Default)]
pub(crate) struct Touched {
    /// The touched rows, in slot order: even rows (slots `..n0`) before odd ones, each in order of
    /// first touch.
    pub rows: Vec<u32>,
    /// How many touched rows are even.
    n0: usize,
    /// The slot of each rating's row, in batch order.
    of_rating: Vec<u32>,
}

impl Touched {
    /// The slot of each rating's row, in batch order.
    pub fn of_rating(&self) -> &[u32] {
        &self.of_rating
    }

    /// The slots of the touched rows of one parity.
    #[inline(always)]
    fn slots(&self, parity: usize) -> std::ops::Range<usize> {
        if parity == 0 {
            0..self.n0
        } else {
            self.n0..self.rows.len()
        }
    }

    /// The touched rows of one parity and their gradient rows (`w` per slot) in `grads`.
    #[inline(always)]
    pub fn of_parity<'g>(&self, parity: usize, grads: &'g [f32], w: usize) -> (&[u32], &'g [f32]) {
        let slots = self.slots(parity);
        (&self.rows[slots.clone()], &grads[slots.start * w..slots.end * w])
    }

    /// Each parity's rows.
    pub fn of_parities(&self) -> [&[u32]; 2] {
        [0, 1].map(|parity| &self.rows[self.slots(parity)])
    }
}

/// Marks a row without a slot.
const NO_SLOT: u32 = u32::MAX;

/// Prepares batches from the training ratings.
pub(crate) struct Preparer {
    data: Arc<Encoded>,
    /// For a fit beyond the caches, the training ratings again, one [`Record`] each, once
    /// [`ready`](Self::ready) has run or the copy started by [`copy_records`](Self::copy_records)
    /// is done; else empty.
    records: Vec<Record>,
    /// The copy of the records under way on a thread of its own, if any.
    copying: Option<JoinHandle<Vec<Record>>>,
    /// Per side, per row: its slot in the batch being prepared, or `NO_SLOT` (all of them between
    /// batches).
    slots: [Vec<u32>; 2],
    /// Per side, room for the odd rows while a batch is read.
    odd: [Vec<u32>; 2],
    /// Where prefetches bring their lines.
    level: Level,
    /// For the exact path: the schedule's tables and where each row stands.
    standing: Option<Standing>,
}

/// Where every row stands, from the order alone, and the schedule's tables to compose gaps from.
struct Standing {
    catchup: CatchUp,
    /// Per side, per row: the last step that touched it (0: none).
    touched_at: [Vec<u32>; 2],
    /// The last step at which every row was brought up to date.
    synced: u32,
    /// The gaps of the step being prepared from each of the last `bs / 2` steps, composed once for
    /// all its rows: rows that stand at the same step share a gap (about two in three do at 25M
    /// ratings), and those of the last few hundred steps are most of a large batch's. On the thread
    /// that prepares a 25M fit's batches, composing gaps took 1.0 s plus 0.25 s for these tables,
    /// against 1.8 s one row at a time, and 5-epoch fits 4.14–4.50 s against 4.25–4.69 s (six
    /// each, alternating); the lesson's fits were no slower (bs 64: 32 gaps a step). Gaps composed
    /// only when a row first needed them (kept by step, stamped) cost more than they spared.
    recent: Vec<Gap>,
}

impl Preparer {
    /// A preparer for the ratings `data` over sides of `rows` rows, whose prefetches bring lines
    /// into `level` (beyond the first for a fit beyond the caches); with `catchup` (the exact
    /// path's schedule), it computes each touched row's catch-up gap too.
    pub fn new(data: Arc<Encoded>, rows: [usize; 2], level: Level, catchup: Option<CatchUp>) -> Self {
        let standing = catchup.map(|catchup| Standing {
            catchup,
            touched_at: rows.map(|n| vec![0; n]),
            synced: 0,
            recent: Vec::new(),
        });
        Preparer {
            data,
            records: Vec::new(),
            copying: None,
            slots: rows.map(|n| vec![NO_SLOT; n]),
            odd: Default::default(),
            level,
            standing,
        }
    }

    /// Whether this fit reads its ratings from records (it reaches beyond the caches) and has none
    /// yet.
    fn wants_records(&self) -> bool {
        self.level != Level::L1 && self.records.is_empty()
    }

    /// Copies the ratings into records, for a fit beyond the caches, on this thread.
    fn ready(&mut self) {
        if self.wants_records() {
            self.records = Record::all(&self.data);
        }
    }

    /// Starts copying the ratings into records on a thread of its own, for a fit beyond the caches
    /// whose batches are prepared ahead: until [`take_records`](Self::take_records) finds the copy
    /// done, batches are gathered from the ratings' arrays (the same batches), so that the steps
    /// need not wait for the copy (see [`Record`]).
    fn copy_records(&mut self) {
        if self.wants_records() && self.copying.is_none() {
            let data = self.data.clone();
            // Named as the helper: its CPU time is part of preparing the batches. Without a thread,
            // batches are gathered from the arrays throughout.
            let copy = std::thread::Builder::new().name(HELPER_THREAD.into()).spawn(move || Record::all(&data));
            self.copying = copy.ok();
        }
    }

    /// Takes the records once their copy is done.
    fn take_records(&mut self) {
        if self.copying.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(Ok(records)) = self.copying.take().map(JoinHandle::join) {
                self.records = records;
            }
        }
    }

    /// An epoch starts at local step `first_step`, every row brought up to date with step `synced`
    /// since the last one started, if given. Batches prepared beyond the last step taken (an epoch
    /// that stopped early) touched no row: a fit goes on after such a stop only from a
    /// synchronisation point at that step, which is checked.
    fn epoch(&mut self, first_step: usize, synced: Option<usize>) {
        let Some(s) = &mut self.standing else { return };
        if let Some(k) = synced {
            s.synced = k as u32;
        }
        for at in s.touched_at.iter_mut().flatten().filter(|at| **at as usize >= first_step) {
            assert!(
                s.synced as usize + 1 == first_step,
                "an epoch stopped early and the next one starts unsynchronised"
            );
            *at = 0;
        }
    }

    /// Prepares `batch` (numbers of training ratings), the batch of local step `k`, into `out`, on
    /// two threads when `par`.
    pub fn prepare(&mut self, batch: &[u32], k: usize, out: &mut Prepared, mut par: Option<&mut Pair>) {
        let Preparer { data, records, slots: [slot0, slot1], odd: [odd0, odd1], level, standing, .. } = self;
        let (data, records, level) = (&**data, &records[..], *level);
        out.first = batch.first().copied().unwrap_or(0);
        out.batch.resize(batch.len(), (0, 0, 0.0));
        let (b0, b1) = out.batch.split_at_mut(batch.len() / 2);
        let (n0, n1) = batch.split_at(batch.len() / 2);
        if records.is_empty() {
            both(par.as_deref_mut(), || gather(data, n0, b0), || gather(data, n1, b1));
        } else {
            both(par.as_deref_mut(), || gather_records(records, n0, b0), || gather_records(records, n1, b1));
        }
        let (b, [t0, t1]) = (&out.batch, &mut out.touched);
        both(par.as_deref_mut(), || t0.assign(b, 0, slot0, odd0, level), || t1.assign(b, 1, slot1, odd1, level));
        match standing {
            Some(Standing { catchup, touched_at: [at0, at1], synced, recent }) => {
                // As the step itself does: tables ready for step k, rows caught up to k − 1.
                catchup.advance(k);
                recent.clear();
                recent.push(Gap::default());
                // No row stands before the last synchronisation point: gaps from there back go unused.
                let len = (batch.len() / 2).min(k - *synced as usize);
                recent.extend((1..len).map(|back| catchup.gap(k - 1 - back, k - 1)));
                let step = StepGaps { catchup, recent, synced: *synced, k };
                let ([t0, t1], [g0, g1]) = (&out.touched, &mut out.gaps);
                both(par, || row_gaps(&step, t0, at0, g0, level), || row_gaps(&step, t1, at1, g1, level));
            }
            None => out.gaps.iter_mut().for_each(Vec::clear),
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        // The copy shares the training ratings, which the learner takes back when the fit ends.
        if let Some(copying) = self.copying.take() {
            let _ = copying.join();
        }
    }
}

/// What the rows of step `k`'s batch need to compose their catch-ups: the schedule's tables, the
/// last synchronisation point, and the gaps from the last `recent.len()` steps (`recent[back]`
/// starts `back` steps before `k − 1`, `recent[0]` is no gap at all).
struct StepGaps<'a> {
    catchup: &'a CatchUp,
    recent: &'a [Gap],
    synced: u32,
    k: usize,
}

impl StepGaps<'_> {
    /// The gap before step `k` of a row that stands at step `k0`.
    #[inline(always)]
    fn from(&self, k0: usize) -> Gap {
        match self.recent.get(self.k - 1 - k0) {
            Some(gap) => *gap,
            None => self.catchup.gap(k0, self.k - 1),
        }
    }
}

/// Each of `touched`'s rows' catch-up before step `step.k` into `gaps` (slot order), and that
/// step as the last that touched them (`at`).
fn row_gaps(step: &StepGaps, touched: &Touched, at: &mut [u32], gaps: &mut Vec<RowGap>, level: Level) {
    let StepGaps { catchup, recent, synced, k } = *step;
    gaps.clear();
    let rows = &touched.rows;
    for (j, &row) in rows.iter().enumerate() {
        if let Some(&far) = rows.get(j + 2 * AHEAD) {
            prefetch(at, far as usize, 1, level);
        }
        if let Some(&ahead) = rows.get(j + AHEAD) {
            let k0 = at[ahead as usize].max(synced) as usize;
            if k0 + recent.len() < k {
                catchup.prefetch(k0, k - 1, level);
            }
        }
        let k0 = at[row as usize].max(synced);
        at[row as usize] = k as u32;
        gaps.push(RowGap { k0, gap: step.from(k0 as usize) });
    }
}

/// Copies the ratings numbered `batch` into `out`, from the three arrays of `data`.
#[inline(always)]
fn gather(data: &Encoded, batch: &[u32], out: &mut [Packed]) {
    for (k, (&r, out)) in batch.iter().zip(out).enumerate() {
        if let Some(&ahead) = batch.get(k + 4 * AHEAD) {
            let ahead = ahead as usize;
            prefetch(&data.users, ahead, 1, Level::L1);
            prefetch(&data.items, ahead, 1, Level::L1);
            prefetch(&data.ratings, ahead, 1, Level::L1);
        }
        let r = r as usize;
        *out = (data.users[r], data.items[r], data.ratings[r]);
    }
}

/// A training rating (user row, item row, rating) in 16 bytes, aligned: four to a cache line, so
/// that reading one at random costs one line, not one from each of [`Encoded`]'s three arrays.
/// A fit beyond the caches reads every rating once an epoch in random order, and that reading was
/// the largest part of preparing its batches: with the ratings copied into records when the fit
/// starts (0.14 s for 20 M of them, counted in the fit), 5-epoch exact fits of the synthetic 25M
/// set at 10 factors took 6.53 s against 6.72 s (14 fits each, alternating), and the thread that
/// prepares batches worked 5.2 s instead of 6.5 s. Memory: 16 bytes per training rating, on
/// ordinary pages (fresh 2 MiB pages were slow to touch first on some of these VMs; here they
/// measured the same). For a fit prepared ahead they are copied off the training thread: on the
/// helper, 5-epoch fits of 5.58–6.21 s against 5.77–6.92 s copied on the training thread (six
/// each, alternating); and since the copy's fresh memory is slow to touch in the minutes after
/// other work has freed much of the VM's (0.45–0.8 s instead of 0.2 s), on a thread of their own
/// while the helper gathers the first batches from the three arrays, so that the steps start
/// without waiting for it: in that phase (brought on by dropping the page cache and reading 15 GB
/// of files before each run) fits of 6.00–6.36 s against 6.30–6.67 s (two sets of three each,
/// alternating), on a quiet VM 5.57–6.12 s against 5.68–6.01 s (five each).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Record(u32, u32, f32);

impl Record {
    /// Every rating of `data`, in order.
    fn all(data: &Encoded) -> Vec<Record> {
        let pairs = data.users.iter().zip(&data.items);
        pairs.zip(&data.ratings).map(|((&user, &item), &rating)| Record(user, item, rating)).collect()
    }
}

/// Copies the ratings numbered `batch` into `out`, from their records. A record is read once an
/// epoch, at random, and fetched as such ([`Level::Once`]), so that it pushes fewer of the tables'
/// lines out of the shared cache: with the three arrays (before records), 5-epoch exact fits of
/// the synthetic 25M set took 7.23 s against 7.45 s with their lines fetched into the second level
/// (alternating in one process, six each).
#[inline(always)]
fn gather_records(records: &[Record], batch: &[u32], out: &mut [Packed]) {
    for (k, (&r, out)) in batch.iter().zip(out).enumerate() {
        if let Some(&ahead) = batch.get(k + 4 * AHEAD) {
            prefetch(records, ahead as usize, 1, Level::Once);
        }
        let Record(user, item, rating) = records[r as usize];
        *out = (user, item, rating);
    }
}

impl Touched {
    /// Gives every row of side `j` that `batch` touches a slot, even rows first, with `slot` (all
    /// `NO_SLOT` before and after) as the side's table of slots and `odd` as room.
    #[inline(always)]
    fn assign(&mut self, batch: &[Packed], j: usize, slot: &mut [u32], odd: &mut Vec<u32>, level: Level) {
        let side_row = |r: &Packed| if j == 0 { r.0 } else { r.1 } as usize;
        // Each first touch is written to both lists and counted in its own, and its slot is chosen
        // with masks, without a branch: a popular item's row is touched many times in a batch, at no
        // pattern a branch predicts. The two counts stay in registers (in an array indexed by
        // parity, each step waited on the last one's store): the batch helper of a 25M fit worked
        // 3.23 s against 3.46 s (means of 12 fits each, alternating; perf, one fit each: its
        // `prepare` 1.6 s against 2.3 s).
        let Touched { rows, of_rating, .. } = self;
        rows.resize(batch.len(), 0);
        odd.resize(batch.len(), 0);
        of_rating.resize(batch.len(), 0);
        let (mut n0, mut n1) = (0usize, 0usize);
        for (k, (r, of)) in batch.iter().zip(of_rating.iter_mut()).enumerate() {
            if let Some(ahead) = batch.get(k + AHEAD) {
                prefetch(slot, side_row(ahead), 1, level);
            }
            let row = side_row(r);
            let parity = row & 1;
            let old = slot[row];
            let first = usize::from(old == NO_SLOT);
            let fresh = ((if parity == 0 { n0 } else { n1 }) << 1 | parity) as u32;
            let s = old ^ ((old ^ fresh) & (first as u32).wrapping_neg());
            slot[row] = s;
            rows[n0] = row as u32;
            odd[n1] = row as u32;
            n0 += first & (parity ^ 1);
            n1 += first & parity;
            *of = s;
        }
        rows.truncate(n0);
        rows.extend_from_slice(&odd[..n1]);
        for s in of_rating.iter_mut() {
            *s = (*s >> 1) + (*s & 1) * n0 as u32;
        }
        for &row in rows.iter() {
            slot[row as usize] = NO_SLOT;
        }
        self.n0 = n0;
    }
}

/// From this many training ratings on, a fit on one engine thread prepares its batches ahead on a
/// helper thread (as epoch orders are drawn ahead from this size on).
const AHEAD_FROM: usize = 1 << 15;

/// The most batches a helper prepares before handing them over, and the most ratings (so that
/// chunks of large batches stay a few MB: each rating costs up to about 100 bytes prepared); the
/// first chunks of an epoch are smaller (4, 8, … batches), so that its first step waits little.
const CHUNK: usize = 64;
const CHUNK_RATINGS: usize = 1 << 16;

/// The name of the threads that prepare batches ahead and copy their records (benchmarks find them
/// by this name).
pub(crate) const HELPER_THREAD: &str = "fastcollab-batches";

/// Chunks prepared and not yet taken, at most.
const READY_CHUNKS: usize = 2;

/// Each step's prepared batch.
pub(crate) enum Feed {
    /// Each step prepares its own batch (on two threads when the engine has them): `step` is the
    /// next batch's step.
    Inline { prep: Box<Preparer>, out: Prepared, step: usize },
    /// A helper thread prepares the batches of each epoch's order ahead of the steps.
    Ahead(Ahead),
}

/// An epoch as the feed is told of it.
pub(crate) struct Epoch {
    /// Its training order (whole batches only are taken).
    pub order: Arc<Vec<u32>>,
    /// The batch size.
    pub bs: usize,
    /// The local steps it takes at most, one batch each (fewer than its batches when the fit
    /// ends within it).
    pub steps: RangeInclusive<usize>,
    /// The step every row was brought up to date with since the last epoch started, if any.
    pub synced: Option<usize>,
}

impl Feed {
    /// The feed for a fit on `prep`'s ratings: ahead for a large fit on one engine thread.
    pub fn new(mut prep: Preparer, par: bool) -> Self {
        if !par && prep.data.len() >= AHEAD_FROM {
            prep.copy_records();
            Feed::Ahead(Ahead::start(prep))
        } else {
            prep.ready();
            Feed::Inline { prep: Box::new(prep), out: Prepared::default(), step: 1 }
        }
    }

    /// An epoch starts.
    pub fn epoch(&mut self, epoch: Epoch) {
        match self {
            Feed::Inline { prep, step, .. } => {
                prep.epoch(*epoch.steps.start(), epoch.synced);
                *step = *epoch.steps.start();
            }
            Feed::Ahead(a) => {
                a.epoch += 1;
                a.left = epoch.steps.clone().count().min(epoch.order.len() / epoch.bs.max(1));
                // A helper that has stopped is reported by `next`.
                let _ = a.channels.as_ref().map(|c| c.orders.send((a.epoch, epoch)));
            }
        }
    }

    /// The prepared `batch`: the epoch's next one.
    pub fn next(&mut self, batch: &[u32], par: Option<&mut Pair>) -> &Prepared {
        let p = match self {
            Feed::Inline { prep, out, step } => {
                prep.prepare(batch, *step, out, par);
                *step += 1;
                out
            }
            Feed::Ahead(a) => a.next(),
        };
        assert!(
            p.batch.len() == batch.len() && p.first == batch.first().copied().unwrap_or(0),
            "a prepared batch is not the step's batch: was Engine::epoch called with the epoch's order?"
        );
        p
    }

    /// The batch `next` gave last.
    pub fn current(&self) -> &Prepared {
        match self {
            Feed::Inline { out, .. } => out,
            Feed::Ahead(a) => &a.chunk.as_ref().expect("a batch was taken").batches[a.at - 1],
        }
    }
}

/// Consecutive prepared batches of one epoch.
#[derive(Default)]
struct Chunk {
    /// Which epoch (counted from 1 by the feed) they belong to.
    epoch: u64,
    /// Room for batches; the first `len` are this chunk's.
    batches: Vec<Prepared>,
    len: usize,
}

/// An epoch's number (counted by the feed) and the epoch.
type Order = (u64, Epoch);

/// The feed's ends of the channels to its helper.
struct Channels {
    orders: Sender<Order>,
    ready: Receiver<Chunk>,
    free: Sender<Chunk>,
}

/// The feed that a helper thread fills ahead of the steps.
pub(crate) struct Ahead {
    channels: Option<Channels>,
    helper: Option<JoinHandle<()>>,
    /// The epoch being trained.
    epoch: u64,
    /// The chunk being taken from, and how many of its batches were taken.
    chunk: Option<Chunk>,
    at: usize,
    /// Batches of the epoch the helper prepares and the steps have not taken yet.
    left: usize,
}

impl Ahead {
    fn start(prep: Preparer) -> Self {
        let (orders, their_orders) = channel();
        let (their_ready, ready) = sync_channel(READY_CHUNKS);
        let (free, their_free) = channel();
        let helper = std::thread::Builder::new()
            .name(HELPER_THREAD.into())
            .spawn(move || prepare_ahead(prep, &their_orders, &their_ready, &their_free))
            .expect("starting the thread that prepares batches");
        Ahead {
            channels: Some(Channels { orders, ready, free }),
            helper: Some(helper),
            epoch: 0,
            chunk: None,
            at: 0,
            left: 0,
        }
    }

    /// The next prepared batch of the current epoch (chunks of an earlier epoch, left when a fit
    /// stopped an epoch early, are passed over).
    fn next(&mut self) -> &Prepared {
        // Waiting for a batch the helper will not prepare would never end.
        assert!(self.left > 0, "a step beyond those its epoch announced");
        self.left -= 1;
        let epoch = self.epoch;
        let channels = self.channels.as_ref().expect("the channels live as long as the feed");
        while !matches!(&self.chunk, Some(c) if c.epoch == epoch && self.at < c.len) {
            if let Some(done) = self.chunk.take() {
                let _ = channels.free.send(done);
            }
            self.chunk = Some(channels.ready.recv().expect("the thread that prepares batches stopped"));
            self.at = 0;
        }
        self.at += 1;
        &self.chunk.as_ref().expect("a chunk of this epoch").batches[self.at - 1]
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // Closing the channels ends the helper, whether it waits for an order or for room.
        self.channels = None;
        if let Some(helper) = self.helper.take() {
            let _ = helper.join();
        }
    }
}

/// The helper's loop: each order's batches, a chunk at a time, until the feed is dropped; a newer
/// order replaces the one being prepared.
fn prepare_ahead(mut prep: Preparer, orders: &Receiver<Order>, ready: &SyncSender<Chunk>, free: &Receiver<Chunk>) {
    let mut next = orders.recv().ok();
    while let Some((epoch, Epoch { order, bs, steps, synced })) = next.take() {
        prep.epoch(*steps.start(), synced);
        let mut batches = order.chunks_exact(bs).zip(steps);
        let most = (CHUNK_RATINGS / bs.max(1)).clamp(1, CHUNK);
        let mut size = most.min(4);
        loop {
            if let Ok(newer) = orders.try_recv() {
                next = Some(newer);
                break;
            }
            prep.take_records();
            let mut chunk = free.try_recv().unwrap_or_default();
            chunk.epoch = epoch;
            chunk.len = 0;
            for (batch, step) in batches.by_ref().take(size) {
                if chunk.batches.len() == chunk.len {
                    chunk.batches.push(Prepared::default());
                }
                prep.prepare(batch, step, &mut chunk.batches[chunk.len], None);
                chunk.len += 1;
            }
            if chunk.len == 0 {
                break;
            }
            if ready.send(chunk).is_err() {
                return;
            }
            size = (2 * size).min(most);
        }
        if next.is_none() {
            next = orders.recv().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::catchup::{Gap, Plan};
    use super::*;

    fn plan() -> Plan {
        Plan {
            lr_mom: (0..200).map(|k| (1e-3 * (1.0 + k as f64 / 100.0), 0.9 - k as f64 / 2000.0)).collect(),
            steps_before: 0,
            beta2: 0.99,
            eps: 1e-8,
            wd: 0.01,
            bs: 64,
        }
    }

    fn preparer(level: Level) -> Preparer {
        let data = Encoded {
            users: (0..5000u32).map(|r| r * 7 % 97).collect(),
            items: (0..5000u32).map(|r| r * 13 % 41).collect(),
            ratings: (0..5000).map(|r| r as f32).collect(),
        };
        Preparer::new(Arc::new(data), [97, 41], level, CatchUp::new(&plan()))
    }

    fn same(a: &Prepared, b: &Prepared) -> bool {
        let t = |t: &Touched| (t.rows.clone(), t.n0, t.of_rating.clone());
        a.batch == b.batch
            && a.first == b.first
            && a.gaps == b.gaps
            && (0..2).all(|j| t(&a.touched[j]) == t(&b.touched[j]))
    }

    /// Batches prepared ahead (from the ratings' records) are those prepared at each step (from
    /// the ratings' arrays), over an epoch that announces fewer steps than it has batches (as
    /// `lr_find`'s fit ends within its epoch), one that stops early, and one after a
    /// synchronisation point, each ending with a partial batch (dropped); slots are numbered even
    /// rows first, by first touch, and each row's catch-up starts where the order says it stands.
    #[test]
    fn batches_prepared_ahead_are_those_prepared_inline() {
        let orders: Vec<Arc<Vec<u32>>> =
            (0..3u32).map(|e| Arc::new((0..4990u32).map(|r| (r * (2 * e + 3) + e) % 5000).collect())).collect();
        let mut inline = Feed::new(preparer(Level::L1), true);
        // Ahead from the ratings' records, as a fit beyond the caches reads them.
        // Records are copied when the preparing thread gets ready, and only beyond the first level.
        let (mut beyond, mut within) = (preparer(Level::L2), preparer(Level::L1));
        assert!(beyond.records.is_empty());
        beyond.ready();
        within.ready();
        assert!(beyond.records.len() == 5000 && within.records.is_empty());
        let mut ahead = Feed::Ahead(Ahead::start(beyond));
        // Ahead while the records are copied: from the arrays until the copy is done, then from them.
        let mut copied = preparer(Level::L2);
        copied.copy_records();
        let mut copying = Feed::Ahead(Ahead::start(copied));
        let (bs, mut k, mut synced) = (64, 1, None);
        let mut catchup = CatchUp::new(&plan()).unwrap();
        let mut stands = [vec![0u32; 97], vec![0u32; 41]];
        for (e, order) in orders.iter().enumerate() {
            // The first epoch announces 10 steps; the second stops after 20 of those it announced.
            let announced = if e == 0 { 10 } else { order.len() / bs };
            let take = if e == 1 { 20 } else { announced };
            let epoch = || Epoch { order: order.clone(), bs, steps: k..=k + announced - 1, synced };
            inline.epoch(epoch());
            ahead.epoch(epoch());
            copying.epoch(epoch());
            if let Some(s) = synced.take() {
                stands.iter_mut().flatten().for_each(|at| *at = s as u32);
            }
            for batch in order.chunks_exact(bs).take(take) {
                let want = inline.next(batch, None);
                let mut check = Prepared::default();
                let mut fresh = preparer(Level::L1);
                fresh.prepare(batch, 1, &mut check, None);
                assert!(check.batch == want.batch && (0..2).all(|j| check.touched[j].rows == want.touched[j].rows));
                assert!(same(want, ahead.next(batch, None)), "epoch {e}");
                assert!(same(want, copying.next(batch, None)), "epoch {e}, records being copied");
                catchup.advance(k);
                for (j, stand) in stands.iter_mut().enumerate() {
                    let k0: Vec<u32> = want.touched[j].rows.iter().map(|&r| stand[r as usize]).collect();
                    assert_eq!(want.gaps[j].iter().map(|g| g.k0).collect::<Vec<_>>(), k0, "step {k}");
                    // Gaps composed once per step for all rows (`recent`) or for one row are the same.
                    for (g, &k0) in want.gaps[j].iter().zip(&k0) {
                        let gap = if k0 as usize + 1 < k { catchup.gap(k0 as usize, k - 1) } else { Gap::default() };
                        assert_eq!(g.gap, gap, "step {k}, from {k0}");
                    }
                    want.touched[j].rows.iter().for_each(|&r| stand[r as usize] = k as u32);
                }
                k += 1;
            }
            // Validation between epochs brings every row up to date.
            synced = Some(k - 1);
        }
        let p = inline.current();
        let t = &p.touched[0];
        let [even, odd] = t.of_parities();
        assert!(even.iter().all(|r| r % 2 == 0) && odd.iter().all(|r| r % 2 == 1));
        for (k, &s) in t.of_rating().iter().enumerate() {
            assert_eq!(t.rows[s as usize], p.batch[k].0);
        }
        assert!(p.gaps(0, 1).len() == odd.len() && p.gaps[0].iter().any(|g| g.gap != Gap::default()));
    }

    /// Records are copied on a thread of their own only beyond the first level, and a feed dropped
    /// while they are copied waits for the copy: the fit hands the training ratings back to the
    /// learner unshared.
    #[test]
    fn a_dropped_feed_waits_for_its_records() {
        let mut within = preparer(Level::L1);
        within.copy_records();
        assert!(within.copying.is_none());
        let mut beyond = preparer(Level::L2);
        beyond.copy_records();
        assert!(beyond.copying.is_some());
        let data = beyond.data.clone();
        drop(Feed::Ahead(Ahead::start(beyond)));
        assert_eq!(Arc::strong_count(&data), 1);
    }
}
