// The questions & answers service alone: the product page's questions, "more answers", and
// writes at a small share (helpful, report, new questions and answers).
import { bodies, get, kinds, post, put, weighted } from './lib/api.js';
import {
  answerId, productId, questionId, reportableAnswerId, reportableQuestionId,
} from './lib/ids.js';
import { options as profileOptions } from './lib/profiles.js';

const GOAL_REQUESTS = 150; // per second at the load profile
const MIX = [
  [70, 'qa_questions'], [26, 'qa_answers'],
  [1.2, 'qa_question_helpful'], [1.2, 'qa_answer_helpful'],
  [0.6, 'qa_question_post'], [0.6, 'qa_answer_post'],
  [0.2, 'qa_question_report'], [0.2, 'qa_answer_report'],
];

export const options = profileOptions(GOAL_REQUESTS, kinds(MIX.map(([, route]) => route)), 0.1);

export default function () {
  const route = weighted(MIX);
  switch (route) {
    case 'qa_questions': get(route, productId()); break;
    case 'qa_answers': get(route, questionId()); break;
    case 'qa_question_helpful': put(route, questionId()); break;
    case 'qa_answer_helpful': put(route, answerId()); break;
    case 'qa_question_report': put(route, reportableQuestionId()); break;
    case 'qa_answer_report': put(route, reportableAnswerId()); break;
    case 'qa_question_post': post(route, bodies.question(productId())); break;
    default: post(route, bodies.answer(), questionId());
  }
}
