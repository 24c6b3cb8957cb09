//! Tests of the structure filling.
