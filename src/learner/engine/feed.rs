//! Where the CPU engines' batches come from. Before a step can touch the tables, its batch is
//! *prepared*: its ratings gathered from the training ratings, and the rows it touches on each
//! side found and given slots. That work depends on the epoch's order only, not on the
//! model, so for a large fit on one engine thread a helper thread prepares batches a chunk ahead
//! of the steps, as a data loader's worker does; otherwise each step prepares its own batch. The
//! prepared batches are the same either way, and so are the results.
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

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
    /// The batch's first rating number: checked against the step's batch.
    first: u32,
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

    /// The touched rows of one parity and their gradient rows (`w` per slot) in `grads`.
    #[inline(always)]
    pub fn of_parity<'g>(&self, parity: usize, grads: &'g [f32], w: usize) -> (&[u32], &'g [f32]) {
        let slots = if parity == 0 { 0..self.n0 } else { self.n0..self.rows.len() };
        (&self.rows[slots.clone()], &grads[slots.start * w..slots.end * w])
    }

    /// Each parity's rows.
    pub fn of_parities(&self) -> [&[u32]; 2] {
        let (r0, r1) = self.rows.split_at(self.n0);
        [r0, r1]
    }
}

/// Marks a row without a slot.
const NO_SLOT: u32 = u32::MAX;

/// Prepares batches from the training ratings.
pub(crate) struct Preparer {
    data: Arc<Encoded>,
    /// Per side, per row: its slot in the batch being prepared, or `NO_SLOT` (all of them between
    /// batches).
    slots: [Vec<u32>; 2],
    /// Per side, room for the odd rows while a batch is read.
    odd: [Vec<u32>; 2],
    /// Where prefetches bring their lines.
    level: Level,
}

impl Preparer {
    /// A preparer for the ratings `data` over sides of `rows` rows.
    pub fn new(data: Arc<Encoded>, rows: [usize; 2], level: Level) -> Self {
        Preparer { data, slots: rows.map(|n| vec![NO_SLOT; n]), odd: Default::default(), level }
    }

    /// Prepares `batch` (numbers of training ratings) into `out`, on two threads when `par`.
    pub fn prepare(&mut self, batch: &[u32], out: &mut Prepared, mut par: Option<&mut Pair>) {
        let Preparer { data, slots: [slot0, slot1], odd: [odd0, odd1], level } = self;
        let (data, level) = (&**data, *level);
        out.first = batch.first().copied().unwrap_or(0);
        out.batch.resize(batch.len(), (0, 0, 0.0));
        let (b0, b1) = out.batch.split_at_mut(batch.len() / 2);
        let (n0, n1) = batch.split_at(batch.len() / 2);
        both(par.as_deref_mut(), || gather(data, n0, b0, level), || gather(data, n1, b1, level));
        let (b, [t0, t1]) = (&out.batch, &mut out.touched);
        both(par, || t0.assign(b, 0, slot0, odd0, level), || t1.assign(b, 1, slot1, odd1, level));
    }
}

/// Copies the ratings numbered `batch` into `out`.
#[inline(always)]
fn gather(data: &Encoded, batch: &[u32], out: &mut [Packed], level: Level) {
    for (k, (&r, out)) in batch.iter().zip(out).enumerate() {
        if let Some(&ahead) = batch.get(k + 4 * AHEAD) {
            let ahead = ahead as usize;
            prefetch(&data.users, ahead, 1, level);
            prefetch(&data.items, ahead, 1, level);
            prefetch(&data.ratings, ahead, 1, level);
        }
        let r = r as usize;
        *out = (data.users[r], data.items[r], data.ratings[r]);
    }
}

impl Touched {
    /// Gives every row of side `j` that `batch` touches a slot, even rows first, with `slot` (all
    /// `NO_SLOT` before and after) as the side's table of slots and `odd` as room.
    #[inline(always)]
    fn assign(&mut self, batch: &[Packed], j: usize, slot: &mut [u32], odd: &mut Vec<u32>, level: Level) {
        let side_row = |r: &Packed| if j == 0 { r.0 } else { r.1 } as usize;
        // Each first touch is written to both lists and counted in its own (no branch on parity).
        let Touched { rows, of_rating, .. } = self;
        rows.resize(batch.len(), 0);
        odd.resize(batch.len(), 0);
        of_rating.clear();
        let mut n = [0usize; 2];
        for (k, r) in batch.iter().enumerate() {
            if let Some(ahead) = batch.get(k + AHEAD) {
                prefetch(slot, side_row(ahead), 1, level);
            }
            let row = side_row(r);
            if slot[row] == NO_SLOT {
                let parity = row & 1;
                slot[row] = (n[parity] << 1 | parity) as u32;
                rows[n[0]] = row as u32;
                odd[n[1]] = row as u32;
                n[parity] += 1;
            }
            of_rating.push(slot[row]);
        }
        let n0 = n[0] as u32;
        rows.truncate(n[0]);
        rows.extend_from_slice(&odd[..n[1]]);
        for s in of_rating.iter_mut() {
            *s = (*s >> 1) + (*s & 1) * n0;
        }
        for &row in rows.iter() {
            slot[row as usize] = NO_SLOT;
        }
        self.n0 = n[0];
    }
}

/// From this many training ratings on, a fit on one engine thread prepares its batches ahead on a
/// helper thread (as epoch orders are drawn ahead from this size on).
const AHEAD_FROM: usize = 1 << 15;

/// The most batches a helper prepares before handing them over; the first chunks of an epoch are
/// smaller (4, 8, …), so that its first step waits little.
const CHUNK: usize = 64;

/// Chunks prepared and not yet taken, at most.
const READY_CHUNKS: usize = 2;

/// Each step's prepared batch.
pub(crate) enum Feed {
    /// Each step prepares its own batch (on two threads when the engine has them).
    Inline(Preparer, Prepared),
    /// A helper thread prepares the batches of each epoch's order ahead of the steps.
    Ahead(Ahead),
}

impl Feed {
    /// The feed for a fit on `prep`'s ratings: ahead for a large fit on one engine thread.
    pub fn new(prep: Preparer, par: bool) -> Self {
        if !par && prep.data.len() >= AHEAD_FROM {
            Feed::Ahead(Ahead::start(prep))
        } else {
            Feed::Inline(prep, Prepared::default())
        }
    }

    /// An epoch with training order `order` and batches of `bs` (whole batches only) starts.
    pub fn epoch(&mut self, order: &Arc<Vec<u32>>, bs: usize) {
        if let Feed::Ahead(a) = self {
            a.epoch += 1;
            // A helper that has stopped is reported by `next`.
            let _ = a.channels.as_ref().map(|c| c.orders.send((a.epoch, order.clone(), bs)));
        }
    }

    /// The prepared `batch`: the epoch's next one.
    pub fn next(&mut self, batch: &[u32], par: Option<&mut Pair>) -> &Prepared {
        let p = match self {
            Feed::Inline(prep, out) => {
                prep.prepare(batch, out, par);
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
            Feed::Inline(_, out) => out,
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

/// An epoch's number, its order, and the batch size.
type Order = (u64, Arc<Vec<u32>>, usize);

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
}

impl Ahead {
    fn start(prep: Preparer) -> Self {
        let (orders, their_orders) = channel();
        let (their_ready, ready) = sync_channel(READY_CHUNKS);
        let (free, their_free) = channel();
        let helper = std::thread::Builder::new()
            .name("fastcollab-batches".into())
            .spawn(move || prepare_ahead(prep, &their_orders, &their_ready, &their_free))
            .expect("starting the thread that prepares batches");
        Ahead { channels: Some(Channels { orders, ready, free }), helper: Some(helper), epoch: 0, chunk: None, at: 0 }
    }

    /// The next prepared batch of the current epoch (chunks of an earlier epoch, left when a fit
    /// stopped an epoch early, are passed over).
    fn next(&mut self) -> &Prepared {
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
    while let Some((epoch, order, bs)) = next.take() {
        let mut batches = order.chunks_exact(bs);
        let mut size = 4;
        loop {
            if let Ok(newer) = orders.try_recv() {
                next = Some(newer);
                break;
            }
            let mut chunk = free.try_recv().unwrap_or_default();
            chunk.epoch = epoch;
            chunk.len = 0;
            for batch in batches.by_ref().take(size) {
                if chunk.batches.len() == chunk.len {
                    chunk.batches.push(Prepared::default());
                }
                prep.prepare(batch, &mut chunk.batches[chunk.len], None);
                chunk.len += 1;
            }
            if chunk.len == 0 {
                break;
            }
            if ready.send(chunk).is_err() {
                return;
            }
            size = (2 * size).min(CHUNK);
        }
        if next.is_none() {
            next = orders.recv().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preparer() -> Preparer {
        let data = Encoded {
            users: (0..5000u32).map(|r| r * 7 % 97).collect(),
            items: (0..5000u32).map(|r| r * 13 % 41).collect(),
            ratings: (0..5000).map(|r| r as f32).collect(),
        };
        Preparer::new(Arc::new(data), [97, 41], Level::L1)
    }

    fn same(a: &Prepared, b: &Prepared) -> bool {
        let t = |t: &Touched| (t.rows.clone(), t.n0, t.of_rating.clone());
        a.batch == b.batch && a.first == b.first && (0..2).all(|j| t(&a.touched[j]) == t(&b.touched[j]))
    }

    /// Batches prepared ahead are those prepared at each step, over epochs that stop early or end
    /// with a partial batch (dropped), and slots are numbered even rows first, by first touch.
    #[test]
    fn batches_prepared_ahead_are_those_prepared_inline() {
        let orders: Vec<Arc<Vec<u32>>> =
            (0..3u32).map(|e| Arc::new((0..4990u32).map(|r| (r * (2 * e + 3) + e) % 5000).collect())).collect();
        let (mut inline, mut ahead) =
            (Feed::Inline(preparer(), Prepared::default()), Feed::Ahead(Ahead::start(preparer())));
        let bs = 64;
        for (e, order) in orders.iter().enumerate() {
            inline.epoch(order, bs);
            ahead.epoch(order, bs);
            // The first epoch stops after 10 batches, as lr_find's fit may.
            let take = if e == 0 { 10 } else { usize::MAX };
            for batch in order.chunks_exact(bs).take(take) {
                let want = inline.next(batch, None);
                let mut check = Prepared::default();
                preparer().prepare(batch, &mut check, None);
                assert!(same(want, &check));
                assert!(same(want, ahead.next(batch, None)), "epoch {e}");
                assert!(same(inline.current(), ahead.current()));
            }
        }
        let t = &inline.current().touched[0];
        let [even, odd] = t.of_parities();
        assert!(even.iter().all(|r| r % 2 == 0) && odd.iter().all(|r| r % 2 == 1));
        for (k, &s) in t.of_rating().iter().enumerate() {
            assert_eq!(t.rows[s as usize], inline.current().batch[k].0);
        }
    }
}
