//! techmon
