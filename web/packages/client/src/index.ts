export { createClient } from "./client";
export type { ClientOptions, OrgmailClient, RequestOptions } from "./client";
export { OrgmailError, isOrgmailError } from "./errors";
export type { OrgmailErrorInit } from "./errors";
export type * from "./contract";
export type { components, operations, paths } from "./openapi";
