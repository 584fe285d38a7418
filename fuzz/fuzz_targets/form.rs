#![no_main]

// The check lives in fuzz/checks.rs, shared with the corpus replay in tests/fuzz_corpus.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::form(data));
