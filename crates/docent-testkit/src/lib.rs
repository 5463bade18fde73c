//! Test support shared by docent's crates: the contract suites every backend of a port must
//! pass, so an embedded implementation and a distributed one (PostgreSQL, Redis, SQS) are held
//! to exactly the same behaviour.
//!
//! [`pg::TestDatabase`] gives a test a PostgreSQL database of its own. The suites:
//! [`queue_contract`] for [`docent_domain::ports::TaskQueue`], [`delivery_contract`] for the
//! brokers under `docent_queue::DeliveryQueue`, [`search_index_contract`] for
//! [`docent_domain::ports::SearchIndex`] and [`cache_contract`] for
//! [`docent_domain::ports::Cache`]. A backend's test file runs one with one line:
//!
//! ```ignore
//! use docent_testkit::queue_contract::QueueUnderTest;
//!
//! async fn make_queue() -> QueueUnderTest {
//!     // a fresh, empty queue built with `CONTRACT_MAX_ATTEMPTS` and a small backoff
//! #   todo!()
//! }
//!
//! docent_testkit::queue_contract_tests!(make_queue);
//! ```

pub mod cache_contract;
pub mod contract;
pub mod delivery_contract;
pub mod pg;
pub mod queue_contract;
pub mod search_index_contract;

pub use cache_contract::CacheUnderTest;
pub use contract::UnderTest;
pub use queue_contract::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest, queue_contract_suite};
pub use search_index_contract::IndexUnderTest;
