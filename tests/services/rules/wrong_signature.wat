;; Exports 'price' with the wrong signature, so loading must fail.
(module
  (func (export "price") (param i32) (result i32) (local.get 0)))
