//! (issue 3: crypto, being written)
