//! What the contract suites share: the [`UnderTest`] wrapper a backend's factory returns, and
//! the macro that turns a suite's list of cases into one `#[tokio::test]` each.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// An implementation of a port handed to one contract case, plus whatever must stay alive
/// while it is used (a temporary directory, a test database, a key-prefix cleanup).
pub struct UnderTest<P: ?Sized> {
    /// The implementation.
    pub port: Arc<P>,
    /// Resources the implementation needs kept alive; dropped after it when the case ends.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl<P: ?Sized> UnderTest<P> {
    /// Wraps an implementation and the resources it depends on.
    pub fn new(port: Arc<P>, guard: impl Any + Send + Sync) -> Self {
        Self {
            port,
            guard: Box::new(guard),
        }
    }
}

impl<P: ?Sized> Debug for UnderTest<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnderTest").finish_non_exhaustive()
    }
}

/// Emits one `#[tokio::test]` per case of the suite module `$module` (a module of this crate
/// whose case functions take an [`UnderTest`]). `tests` takes a factory returning a future of
/// the `UnderTest`; `optional_tests` one returning a future of an `Option` of it, and each case
/// passes without running on `None` (the backend's server is not configured here; the factory
/// says why).
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_emit {
    (tests $module:ident [$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let make = $factory;
                $crate::$module::$case(make().await).await;
            }
        )*
    };
    (optional_tests $module:ident [$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let make = $factory;
                if let Some(under_test) = make().await {
                    $crate::$module::$case(under_test).await;
                }
            }
        )*
    };
}
