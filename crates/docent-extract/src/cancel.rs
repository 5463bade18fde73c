//! Cooperative cancellation: a [`Cancel`] token is a flag and an optional deadline, checked by
//! every loop of the extractors (through [`crate::Builder`] and explicit checks) and of the
//! chunker, so a deadline or a cancelled task really stops the work instead of abandoning a
//! thread that keeps running (and holding its memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ExtractError;

/// A cancellation token: cheap to clone (clones share the flag) and to check.
///
/// A token made by [`Cancel::child`] is cancelled when its parent is, and may add its own
/// deadline. The default token is never cancelled.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<Inner>>);

#[derive(Debug)]
struct Inner {
    flag: AtomicBool,
    /// When the token trips by itself, and the budget it was given (for the error).
    deadline: Option<(Instant, Duration)>,
    parent: Cancel,
}

impl Cancel {
    /// A token that trips only when [`Cancel::cancel`] is called on it (or a clone).
    pub fn new() -> Self {
        Self::make(None, Cancel::default())
    }

    /// A token that also trips by itself `budget` from now.
    pub fn with_deadline(budget: Duration) -> Self {
        Cancel::default().child(Some(budget))
    }

    /// A token cancelled with this one, or by itself `budget` from now; cancelling the child
    /// leaves this one alone.
    pub fn child(&self, budget: Option<Duration>) -> Self {
        let deadline = budget.map(|b| (Instant::now().checked_add(b), b));
        let deadline = match deadline {
            // A budget too large to represent is no deadline.
            Some((None, _)) | None => None,
            Some((Some(at), b)) => Some((at, b)),
        };
        Self::make(deadline, self.clone())
    }

    fn make(deadline: Option<(Instant, Duration)>, parent: Cancel) -> Self {
        Cancel(Some(Arc::new(Inner {
            flag: AtomicBool::new(false),
            deadline,
            parent,
        })))
    }

    /// Trips the token (and every clone and child of it).
    pub fn cancel(&self) {
        if let Some(inner) = &self.0 {
            inner.flag.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the token (or an ancestor) was cancelled or is past its deadline.
    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// `Ok` while the token holds; else the error the work should stop with.
    pub fn check(&self) -> Result<(), ExtractError> {
        match self.reason() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Why the token tripped: [`ExtractError::Timeout`] for a deadline (the nearest one that
    /// passed), else [`ExtractError::Cancelled`].
    fn reason(&self) -> Option<ExtractError> {
        let mut cur = self;
        let mut cancelled = false;
        let mut now: Option<Instant> = None;
        while let Some(inner) = &cur.0 {
            if let Some((at, budget)) = inner.deadline {
                let now = *now.get_or_insert_with(Instant::now);
                if now >= at {
                    return Some(ExtractError::Timeout(budget));
                }
            }
            cancelled |= inner.flag.load(Ordering::Relaxed);
            cur = &inner.parent;
        }
        cancelled.then_some(ExtractError::Cancelled)
    }
}

/// Cancels its token when dropped: ties a token to a scope (a task's future that may be
/// dropped on cancellation or timeout, a thread's lifetime).
#[derive(Debug)]
pub struct CancelOnDrop(pub Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_deadlines_trip_children_not_parents() {
        let never = Cancel::default();
        never.cancel();
        assert!(never.check().is_ok());

        let parent = Cancel::new();
        let child = parent.child(Some(Duration::from_secs(3600)));
        assert!(child.check().is_ok());
        child.cancel();
        assert_eq!(child.check(), Err(ExtractError::Cancelled));
        assert!(parent.check().is_ok());

        let child = parent.child(None);
        parent.cancel();
        assert_eq!(child.check(), Err(ExtractError::Cancelled));

        let timed = Cancel::with_deadline(Duration::ZERO);
        assert_eq!(timed.check(), Err(ExtractError::Timeout(Duration::ZERO)));
        assert!(Cancel::with_deadline(Duration::MAX).check().is_ok());
        {
            let _guard = CancelOnDrop(timed.clone());
        }
        assert!(timed.is_cancelled());
    }
}
