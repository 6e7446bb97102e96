//! Runs application code the bridge calls back (tools, hooks, `ask_user` handlers) on the
//! blocking thread pool, each call on a thread of its own driven by `Handle::block_on`.
//!
//! An async callback that blocks its thread by mistake (a synchronous read of a FIFO, a
//! blocking HTTP client) then holds only that thread: the runtime's worker threads keep
//! serving other agents, and every deadline (tool timeout, chat timeout, Ctrl-C) still fires.
//! Without this, one such call can wedge a small runtime entirely. The cost is one hand-off to
//! a pooled thread per call (a few microseconds, see BENCHMARKS.md).

use std::future::Future;

use futures::future::{AbortHandle, Abortable};

/// How a callback ended, other than with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// It panicked, with this message.
    Panicked(String),
    /// It was cancelled (its caller gave up: a timeout, a cancelled turn).
    Cancelled,
}

/// Aborts the callback when the caller's future is dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `callback` off the runtime's worker threads and waits for it. Dropping the returned
/// future cancels the callback at its next `.await`.
pub(crate) async fn run<F>(callback: F) -> Result<F::Output, Interrupted>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let _cancel = AbortOnDrop(abort);
    let handle = tokio::runtime::Handle::current();
    let running = tokio::task::spawn_blocking(move || {
        handle.block_on(Abortable::new(callback, registration))
    });
    match running.await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(_aborted)) => Err(Interrupted::Cancelled),
        Err(e) if e.is_panic() => Err(Interrupted::Panicked(crate::rpc::panic_message(
            e.into_panic().as_ref(),
        ))),
        Err(_) => Err(Interrupted::Cancelled),
    }
}

/// Runs `callback` on the current task, only guarding against its panic: for callbacks that
/// promised never to block their thread ([`crate::Tool::nonblocking`]).
pub(crate) async fn run_here<F: Future>(callback: F) -> Result<F::Output, Interrupted> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(callback)
        .catch_unwind()
        .await
        .map_err(|panic| Interrupted::Panicked(crate::rpc::panic_message(panic.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_callback_leaves_the_runtime_free() {
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&released);
        let stuck = tokio::spawn(run(async move {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            7
        }));
        // The only worker thread is free: timers fire while the callback blocks its thread.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!stuck.is_finished());
        released.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(stuck.await.unwrap(), Ok(7));
    }

    #[tokio::test]
    async fn a_callback_run_here_reports_its_panic() {
        assert_eq!(run_here(async { 7 }).await, Ok(7));
        let panicked = run_here(async { panic!("boom") }).await;
        assert_eq!(panicked, Err::<(), _>(Interrupted::Panicked("boom".into())));
    }

    #[tokio::test]
    async fn panics_and_cancellations_are_reported() {
        let panicked = run(async { panic!("boom") }).await;
        assert_eq!(panicked, Err::<(), _>(Interrupted::Panicked("boom".into())));
        let pending = run(std::future::pending::<()>());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), pending)
                .await
                .is_err()
        );
    }
}
