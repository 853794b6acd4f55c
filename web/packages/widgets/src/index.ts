export { MailProvider, useInvalidate, useMailClient } from "./MailProvider";
export type { MailProviderProps, MailResource } from "./MailProvider";

export { MailboxList } from "./widgets/MailboxList";
export type { MailboxListProps } from "./widgets/MailboxList";
export { CreateMailboxForm } from "./widgets/CreateMailboxForm";
export type { CreateMailboxFormProps } from "./widgets/CreateMailboxForm";
export { MailboxDetail } from "./widgets/MailboxDetail";
export type { MailboxDetailProps } from "./widgets/MailboxDetail";
export { AssignMailbox } from "./widgets/AssignMailbox";
export type { AssignMailboxProps } from "./widgets/AssignMailbox";
export { MessageLog, MESSAGE_STATUSES } from "./widgets/MessageLog";
export type { MessageLogProps } from "./widgets/MessageLog";
export { MessageDetail } from "./widgets/MessageDetail";
export type { MessageDetailProps } from "./widgets/MessageDetail";
export { SendMailForm } from "./widgets/SendMailForm";
export type { SendMailFormProps } from "./widgets/SendMailForm";
export { SuppressionList, SUPPRESSION_REASONS } from "./widgets/SuppressionList";
export type { SuppressionListProps } from "./widgets/SuppressionList";
export { WebhookList, WEBHOOK_EVENT_TYPES } from "./widgets/WebhookList";
export type { SubscribableEventType, WebhookListProps } from "./widgets/WebhookList";
export { WebhookDeliveries } from "./widgets/WebhookDeliveries";
export type { WebhookDeliveriesProps } from "./widgets/WebhookDeliveries";
export { DomainSetup } from "./widgets/DomainSetup";
export type { DomainSetupProps } from "./widgets/DomainSetup";

export { ErrorBanner } from "./shared/ErrorBanner";
export { StatusBadge } from "./shared/StatusBadge";
export * as samples from "./preview";
