//! Support code for the black-box tests lives in tests/tests/support.
