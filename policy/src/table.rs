//! A fixed-capacity hash table over plain slots, made to live in an nginx shared memory zone:
//! no pointers, no allocation after the zone is set up, bounded work per operation.
//!
//! Open addressing with a short probe window. A slot, once used, is never emptied again: it is
//! only reused for another key, so probe chains never break and no tombstones are needed.
//! When every slot of a key's window is taken, the least recently used one that is idle is
//! reused; failing that the least recently used one of all (the caller is told, and logs it).

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Slots looked at for one key.
pub const PROBE: usize = 16;

/// One entry of a table; `K` is the key, `V` what is kept for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Slot<K, V> {
    pub used: bool,
    pub key: K,
    /// When the key was last touched (monotonic milliseconds), for eviction.
    pub touched: u64,
    pub value: V,
}

/// Whether inserting a key had to push another one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Found,
    New,
    /// A key whose state still mattered was dropped to make room.
    Evicted,
}

/// Hashes a key with the zone's seed, so all workers agree and outsiders cannot aim at a slot.
pub fn hash(seed: [u64; 2], key: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(seed[0], seed[1]);
    h.write(key);
    h.finish()
}

fn window(len: usize, hash: u64) -> impl Iterator<Item = usize> {
    let start = (hash % len.max(1) as u64) as usize;
    (0..PROBE.min(len)).map(move |i| (start + i) % len)
}

/// Finds the slot holding `key`.
pub fn find<K: PartialEq, V>(slots: &[Slot<K, V>], hash: u64, key: &K) -> Option<usize> {
    window(slots.len(), hash).find(|&i| slots[i].used && slots[i].key == *key)
}

/// Finds `key`, or claims a slot for it with `V::default()`. `idle` says whether a value no
/// longer matters, which makes its slot the first to reuse. Returns `None` only for an empty
/// table.
pub fn claim<K: PartialEq + Copy, V: Default + Copy>(
    slots: &mut [Slot<K, V>],
    hash: u64,
    key: &K,
    now: u64,
    idle: impl Fn(&V) -> bool,
) -> Option<(usize, Claim)> {
    let mut free = None;
    let mut oldest_idle: Option<usize> = None;
    let mut oldest: Option<usize> = None;
    for i in window(slots.len(), hash) {
        let s = &slots[i];
        if !s.used {
            free.get_or_insert(i);
            // Nothing was ever stored past an unused slot in this window.
            break;
        }
        if s.key == *key {
            slots[i].touched = now;
            return Some((i, Claim::Found));
        }
        let older = |best: Option<usize>| best.is_none_or(|b| s.touched < slots[b].touched);
        if idle(&s.value) && older(oldest_idle) {
            oldest_idle = Some(i);
        }
        if older(oldest) {
            oldest = Some(i);
        }
    }
    let (i, how) = match (free, oldest_idle, oldest) {
        (Some(i), _, _) | (None, Some(i), _) => (i, Claim::New),
        (None, None, Some(i)) => (i, Claim::Evicted),
        (None, None, None) => return None,
    };
    slots[i] = Slot {
        used: true,
        key: *key,
        touched: now,
        value: V::default(),
    };
    Some((i, how))
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = Slot<u32, u8>;

    fn table(n: usize) -> Vec<T> {
        vec![T::default(); n]
    }

    #[test]
    fn insert_then_find() {
        let mut t = table(64);
        let seed = [1, 2];
        for k in 0..40u32 {
            let h = hash(seed, &k.to_le_bytes());
            let (i, how) = claim(&mut t, h, &k, 1, |_| false).unwrap();
            assert_eq!(how, Claim::New);
            t[i].value = k as u8;
        }
        for k in 0..40u32 {
            let h = hash(seed, &k.to_le_bytes());
            let i = find(&t, h, &k).expect("present");
            assert_eq!(t[i].value, k as u8);
            assert_eq!(
                claim(&mut t, h, &k, 2, |_| false).unwrap(),
                (i, Claim::Found)
            );
        }
        assert_eq!(find(&t, hash(seed, b"x"), &999), None);
    }

    #[test]
    fn full_window_reuses_idle_then_oldest() {
        // Every key hashes to the same start: the window is the whole small table.
        let mut t = table(PROBE);
        for k in 0..PROBE as u32 {
            let (i, _) = claim(&mut t, 0, &k, 100 + u64::from(k), |_| false).unwrap();
            t[i].value = 1;
        }
        // Key 5 is idle: it goes first even though key 0 is older.
        t[5].value = 0;
        assert_eq!(
            claim(&mut t, 0, &1000, 500, |v| *v == 0).unwrap(),
            (5, Claim::New)
        );
        t[5].value = 1;
        // No idle key left: the least recently touched (key 0) is evicted, loudly.
        assert_eq!(
            claim(&mut t, 0, &1001, 600, |v| *v == 0).unwrap(),
            (0, Claim::Evicted)
        );
        assert_eq!(find(&t, 0, &0), None);
        assert!(find(&t, 0, &1).is_some());
    }

    #[test]
    fn empty_table_claims_nothing() {
        let mut t = table(0);
        assert_eq!(claim(&mut t, 7, &1, 0, |_| true), None);
        assert_eq!(find(&t, 7, &1), None);
    }
}
