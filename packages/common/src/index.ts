export * from './errors.js';
export * from './keys.js';
export * from './schemas.js';
export * from './config.js';
export * from './gtid/index.js';
