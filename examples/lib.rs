//! Runnable examples of trawl's library crates live beside this file as `[[example]]`s.
