//! Running independent pieces of work on a few threads: the one work queue
//! downloads, unpacks and layer builds share, and how many cores there are.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The number of cores this process may use (at least one).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

/// Runs `work` for every item of `order` (indices into the caller's list,
/// in the order they should start) on up to `threads` threads. After an
/// item fails no new one starts; the ones already running finish. Returns
/// the results of the items that ran, sorted by index.
pub fn run_queue<T, E, F>(order: &[usize], threads: usize, work: F) -> Vec<(usize, Result<T, E>)>
where
    T: Send,
    E: Send,
    F: Fn(usize) -> Result<T, E> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results = Mutex::new(Vec::with_capacity(order.len()));
    let threads = threads.clamp(1, order.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let result = work(index);
                    failed.fetch_or(result.is_err(), Ordering::Relaxed);
                    results
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    results.sort_by_key(|(index, _)| *index);
    results
}

/// The first error by index among `results`, or every value in order.
pub fn collect_in_order<T, E>(results: Vec<(usize, Result<T, E>)>) -> Result<Vec<T>, E> {
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_once_and_results_keep_their_order() {
        let order: Vec<usize> = (0..50).rev().collect();
        let results = run_queue(&order, 4, |index| Ok::<_, ()>(index * 2));
        let values = collect_in_order(results).unwrap();
        assert_eq!(values, (0..50).map(|index| index * 2).collect::<Vec<_>>());
    }

    #[test]
    fn after_a_failure_no_new_item_starts_and_the_first_error_wins() {
        let order: Vec<usize> = (0..100).collect();
        let started = AtomicUsize::new(0);
        let results = run_queue(&order, 1, |index| {
            started.fetch_add(1, Ordering::Relaxed);
            if index >= 3 { Err(index) } else { Ok(index) }
        });
        assert_eq!(started.load(Ordering::Relaxed), 4);
        assert_eq!(collect_in_order(results), Err(3));
    }
}
