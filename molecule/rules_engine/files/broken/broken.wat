;; Invalid on purpose: the function returns nothing although the ABI expects (i64 i32 i32).
(module
  (func (export "price") (result i64 i32 i32)))
