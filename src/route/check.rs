//! Cross-reference checks of loaded routes.
