//! DUO open onderwijsdata files (written by the DUO helper).
