//! End-to-end tests of the `trawl` binary against trawl-testsite, one module per area.

mod testsite;
