//! tlog-tiles paths (`audit::tiles::TilePath`), as any client may request below `/tile/`, and
//! the tile and entry-bundle byte formats the auditor's tools read back.
//!
//! Only canonical paths are accepted, so a parsed path must print as exactly the input; a tile's
//! hashes and a bundle's entries must survive their encode/decode round trip.
#![no_main]

use cgc_gateway::audit::tiles::{
    MAX_TILE_LEVEL, TILE_WIDTH, TilePath, entry_bundle, split_bundle, tile_bytes, tile_hashes,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rest) = std::str::from_utf8(data) {
        if let Some(path) = TilePath::parse_after_tile(rest) {
            assert_eq!(path.to_path(), format!("tile/{rest}"));
            assert!((1..=TILE_WIDTH).contains(&path.width()));
            if let TilePath::Hashes { level, .. } = path {
                assert!(level <= MAX_TILE_LEVEL);
            }
        }
    }

    if let Some(hashes) = tile_hashes(data) {
        assert_eq!(tile_bytes(&hashes), data);
    }
    if let Some(entries) = split_bundle(data) {
        assert_eq!(entry_bundle(entries.iter().copied()).as_deref(), Ok(data));
    }
});
