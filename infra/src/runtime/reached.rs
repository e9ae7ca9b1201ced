//! The log position a request's commands reached: every command run
//! inside [`tracking`] notes where its events landed (or, when it changed
//! nothing, its stream's last event), so that the request's answer can
//! carry it as `Herald-Position` without each service passing it along.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static REACHED: Cell<Option<i64>>;
}

/// Runs `work`, returning with its output the highest position a command
/// run inside it noted, if any did.
pub async fn tracking<F: Future>(work: F) -> (F::Output, Option<i64>) {
    REACHED
        .scope(Cell::new(None), async {
            let output = work.await;
            (output, REACHED.with(Cell::get))
        })
        .await
}

/// Notes that a command of the current request reached `position` (outside
/// [`tracking`], nothing happens).
pub(crate) fn note(position: i64) {
    let _ = REACHED.try_with(|reached| {
        reached.set(Some(reached.get().map_or(position, |p| p.max(position))));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_highest_position_noted_inside() {
        note(99);
        let ((), reached) = tracking(async {
            note(7);
            note(12);
            note(3);
        })
        .await;
        assert_eq!(reached, Some(12));
        let ((), none) = tracking(async {}).await;
        assert_eq!(none, None);
    }
}
