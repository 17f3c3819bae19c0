// Node 20 lacks Promise.withResolvers (Node >= 22), which @restatedev/restate-sdk uses.
if (typeof Promise.withResolvers !== "function")
  Promise.withResolvers = function () { let resolve, reject; const promise = new this((a, b) => { resolve = a; reject = b; }); return { promise, resolve, reject }; };
