//! Test support shared by docent's crates: the contract suites every backend of a port must
//! pass, so an embedded implementation and a distributed one (PostgreSQL, Redis, SQS) are held
//! to exactly the same behaviour.
//!
//! [`pg::TestDatabase`] gives a test a PostgreSQL database of its own. The
//! [`queue_contract`] suite for [`docent_domain::ports::TaskQueue`], and the
//! [`delivery_contract`] suite for the brokers under `docent_queue::DeliveryQueue`. A
//! backend's test file runs it with one line:
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

pub mod delivery_contract;
pub mod pg;
pub mod queue_contract;

pub use queue_contract::{CONTRACT_MAX_ATTEMPTS, QueueUnderTest, queue_contract_suite};
