/** The tickwire wire protocol: codes, frame layouts and the MessagePack writer. Imports nothing else of tickwire. */
export * from './codes.js'
export * from './messages.js'
export * from './msgpack.js'
export * from './schema.js'
